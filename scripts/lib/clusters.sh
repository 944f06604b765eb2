# Throwaway PostgreSQL clusters for the demo and the benchmark (sourced, not run).
# Needs: $bindir (PostgreSQL server binaries), $work (a temp dir). Defines start_cluster,
# stop_clusters, free_port and the as_pg prefix (runuser to postgres when root).

as_pg=()
if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$work"
    as_pg=(runuser -u postgres --)
fi
started_clusters=()

# Below the kernel's ephemeral range (32768-60999 by default): a port in it can be held by any
# outgoing connection's local end (the test suite makes thousands), and a server started on it
# then fails to bind although nothing listened there when the port was picked.
free_port() { # [taken...]
    local p t
    for p in $(seq 25432 25632); do
        for t in "$@"; do [ "$p" = "$t" ] && continue 2; done
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return
        fi
    done
    echo "no free port between 25432 and 25632" >&2
    exit 1
}

start_cluster() { # name port [extra postgres options]
    "${as_pg[@]}" "$bindir/initdb" -D "$work/$1" -U postgres -A trust -E UTF8 --locale=C --no-sync >/dev/null
    if ! "${as_pg[@]}" "$bindir/pg_ctl" -D "$work/$1" -l "$work/$1.log" -w \
        -o "-p $2 -c listen_addresses=127.0.0.1 -k $work ${3:-}" start >/dev/null; then
        echo "the $1 server did not start on port $2; its log ends:" >&2
        tail -n 5 "$work/$1.log" >&2
        return 1
    fi
    started_clusters+=("$1")
}

stop_clusters() {
    local name
    for name in "${started_clusters[@]}"; do
        "${as_pg[@]}" "$bindir/pg_ctl" -D "$work/$name" -m fast -w stop >/dev/null 2>&1 || true
    done
}
