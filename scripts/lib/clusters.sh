# Throwaway PostgreSQL clusters for the demo and the benchmark (sourced, not run).
# Needs: $bindir (PostgreSQL server binaries), $work (a temp dir). Defines start_cluster,
# stop_clusters, free_port and the as_pg prefix (runuser to postgres when root).

as_pg=()
if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$work"
    as_pg=(runuser -u postgres --)
fi
started_clusters=()

free_port() { # [taken...]
    local p t
    for p in $(seq 55432 55632); do
        for t in "$@"; do [ "$p" = "$t" ] && continue 2; done
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return
        fi
    done
    echo "no free port between 55432 and 55632" >&2
    exit 1
}

start_cluster() { # name port [extra postgres options]
    "${as_pg[@]}" "$bindir/initdb" -D "$work/$1" -U postgres -A trust -E UTF8 --locale=C --no-sync >/dev/null
    "${as_pg[@]}" "$bindir/pg_ctl" -D "$work/$1" -l "$work/$1.log" -w \
        -o "-p $2 -c listen_addresses=127.0.0.1 -k $work ${3:-}" start >/dev/null
    started_clusters+=("$1")
}

stop_clusters() {
    local name
    for name in "${started_clusters[@]}"; do
        "${as_pg[@]}" "$bindir/pg_ctl" -D "$work/$name" -m fast -w stop >/dev/null 2>&1 || true
    done
}
