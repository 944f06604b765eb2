#!/usr/bin/env bash
# Benchmark: neoncopy against pg_dump/pg_restore, pg_dump | psql and Debian's pgcopydb, on
# throwaway local servers, the contenders alternating run by run. Prints a table of medians,
# the ratio to the fastest peer, the CPU seconds each run cost the whole machine (servers
# included) and neoncopy's peak memory. See docs/benchmarks.md.
#
#   bench/run.sh [--runs N] [--jobs N] [--datasets "mixed small big latency onekey nokey"]
#                [--scale F]
#                [--bin-dir DIR] [--baseline-bin DIR] [--settle SECONDS]
#                [--only "neoncopy neoncopy-baseline pgdump pgdumpplain pgcopydb"]
#                [--follow-rate TPS]
#
# --scale shrinks or grows every dataset (1 = the sizes of docs/benchmarks.md). --bin-dir
# takes neoncopy and latency_proxy from DIR instead of building them (to measure a given
# build while the tree changes). --baseline-bin adds the neoncopy of DIR (an earlier build)
# as one more contender, alternating with the others, to measure a change. --settle is the
# pause before each run, after the run's checkpoint and sync (default 2 s). --only keeps the
# named contenders. Datasets many10k and many50k (10,000 and 50,000 tables) are not in the
# default set: they take long, and pit neoncopy against pg_dump -Fd | pg_restore only.
# Dataset follow (not in the default set either) is online migration: a ~1 GB source under a
# steady write load (--follow-rate transactions per second, default 500, each an UPDATE and an
# INSERT), copied with neoncopy clone --follow then neoncopy cutover, against pgcopydb clone
# --follow then its sentinel's endpos (each given 3 minutes to catch up and 3 to reach its end
# position), onto a superuser target: the initial copy, the rate
# at which the backlog is applied, the cutover time (writes stopped -> target complete and
# replication released) and whether the target came out identical.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"

runs=3
jobs=2
datasets="mixed small big latency onekey nokey"
scale=1
bin_dir=""
baseline=""
settle=2
only=""
follow_rate=500
while [ $# -gt 0 ]; do
    case "$1" in
        --runs) runs="$2"; shift 2 ;;
        --jobs) jobs="$2"; shift 2 ;;
        --datasets) datasets="$2"; shift 2 ;;
        --scale) scale="$2"; shift 2 ;;
        --bin-dir) bin_dir="$2"; shift 2 ;;
        --baseline-bin) baseline="$(cd "$2" && pwd)/neoncopy"; shift 2 ;;
        --settle) settle="$2"; shift 2 ;;
        --only) only="$2"; shift 2 ;;
        --follow-rate) follow_rate="$2"; shift 2 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done

scripts/ensure-deps.sh
if ! command -v pgcopydb >/dev/null; then
    if [ "$(id -u)" -eq 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q pgcopydb >/dev/null || true
    fi
fi
# pgcopydb 0.10's --follow decodes with wal2json (it has no --plugin option).
case " $datasets " in *" follow "*)
    if [ ! -e /usr/lib/postgresql/15/lib/wal2json.so ] && [ "$(id -u)" -eq 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql-15-wal2json >/dev/null || true
    fi ;;
esac
have_pgcopydb=0
command -v pgcopydb >/dev/null && have_pgcopydb=1
bindir="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"

if [ -n "$bin_dir" ]; then
    neoncopy="$(cd "$bin_dir" && pwd)/neoncopy"
    proxy="$(cd "$bin_dir" && pwd)/latency_proxy"
else
    echo "== building neoncopy and the latency proxy (release)"
    cargo build --release --locked --quiet --bin neoncopy --example latency_proxy
    neoncopy="$root/target/release/neoncopy"
    proxy="$root/target/release/examples/latency_proxy"
fi
echo "== neoncopy: $("$neoncopy" --version)"
[ -n "$baseline" ] && echo "== baseline: $("$baseline" --version)"

work="$(mktemp -d /tmp/neoncopy-bench.XXXXXX)"
chmod 755 "$work"
# shellcheck source=scripts/lib/clusters.sh
. scripts/lib/clusters.sh
proxy_pid=""
cleanup() {
    [ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null || true
    stop_clusters
    rm -rf "$work"
}
trap cleanup EXIT

src_port="$(free_port)"
dst_port="$(free_port "$src_port")"
proxy_port="$(free_port "$src_port" "$dst_port")"
# Autovacuum off: a contender that does not analyze (pg_dump | psql) would leave the servers
# busy with thousands of new tables during the next contender's run.
# pg_dump locks every table in one transaction: 512 x 222 server processes holds 50,000 tables.
tuning="-c shared_buffers=512MB -c max_wal_size=4GB -c checkpoint_timeout=30min -c max_connections=200 -c autovacuum=off -c max_locks_per_transaction=512"
# The source can be followed (dataset follow); the other datasets do not write to it.
start_cluster source "$src_port" "$tuning -c wal_level=logical -c max_replication_slots=10 -c max_wal_senders=10"
start_cluster target "$dst_port" "$tuning"
"$proxy" "$proxy_port" "$dst_port" 10 & proxy_pid=$!

src_psql=("$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$src_port" -U postgres)
dst_psql=("$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$dst_port" -U postgres)
n() { python3 -c "print(max(1, int($1 * $scale)))"; }

make_mixed() { # ~750 MB: jsonb and timestamps, wide text, numbers, a few small tables
    "${src_psql[@]}" -d "$1" <<SQL
create table events (id bigint primary key, at timestamptz not null, kind text not null, payload jsonb not null);
insert into events select g, now() - g * interval '1 second', 'kind' || (g % 20),
  jsonb_build_object('user', g % 1000, 'tags', jsonb_build_array('a', 'b', g % 7), 'value', g * 1.5)
from generate_series(1, $(n 1200000)) g;
create index events_at on events (at);
create index events_kind on events (kind);
create table documents (id serial primary key, title text not null, body text not null, created date not null);
insert into documents (title, body, created) select 'doc ' || g, repeat(md5(g::text), 30), date '2020-01-01' + g % 1500
from generate_series(1, $(n 200000)) g;
create index documents_created on documents (created);
create table measures (id bigint generated always as identity primary key, sensor int not null, v1 float8, v2 numeric(12,3), ok bool);
insert into measures (sensor, v1, v2, ok) select g % 500, random(), g / 7.0, g % 3 = 0 from generate_series(1, $(n 2500000)) g;
create index measures_sensor on measures (sensor);
create table customers (id serial primary key, email text unique not null, name text);
insert into customers (email, name) select 'c' || g || '@x.org', 'customer ' || g from generate_series(1, $(n 50000)) g;
create table orders (id serial primary key, customer_id int not null references customers (id), total numeric(10,2));
insert into orders (customer_id, total) select 1 + g % $(n 50000), g % 1000 from generate_series(1, $(n 300000)) g;
create index orders_customer on orders (customer_id);
SQL
}

make_small() { # 2000 small tables, each with a key, a unique and a secondary index
    python3 - "$(n 2000)" > "$work/small.sql" <<'PY'
import sys
for i in range(int(sys.argv[1])):
    print(f"create table t{i} (id int primary key, code text unique, v int, note text);"
          f"create index t{i}_v on t{i} (v);"
          f"insert into t{i} select g, 'c' || g, g % 10, 'n' from generate_series(1, 20) g;")
PY
    "${src_psql[@]}" -d "$1" -f "$work/small.sql" >/dev/null
}

make_big() { # ~1 GB: one table with a bigint key, one without any key
    "${src_psql[@]}" -d "$1" <<SQL
create table keyed (id bigint primary key, a text, b text, n int);
insert into keyed select g, md5(g::text), repeat('x', 150), g % 1000 from generate_series(1, $(n 2500000)) g;
create table keyless (a text, b text, n int);
insert into keyless select md5(g::text), repeat('y', 150), g % 1000 from generate_series(1, $(n 2500000)) g;
SQL
}

make_onekey() { # ~600 MB in one table with a bigint key: split against unsplit
    "${src_psql[@]}" -d "$1" <<SQL
create table keyed (id bigint primary key, a text, b text, n int);
insert into keyed select g, md5(g::text), repeat('x', 150), g % 1000 from generate_series(1, $(n 2500000)) g;
SQL
}

make_nokey() { # ~600 MB in one table without any key (split by page ranges)
    "${src_psql[@]}" -d "$1" <<SQL
create table keyless (a text, b text, n int);
insert into keyless select md5(g::text), repeat('y', 150), g % 1000 from generate_series(1, $(n 2500000)) g;
SQL
}

make_latency() { # 500 small tables, cloned through the proxy's 20 ms round trip
    python3 - "$(n 500)" > "$work/latency.sql" <<'PY'
import sys
for i in range(int(sys.argv[1])):
    print(f"create table t{i} (id int primary key, code text unique, v int);"
          f"create index t{i}_v on t{i} (v);"
          f"insert into t{i} select g, 'c' || g, g % 10 from generate_series(1, 20) g;")
PY
    "${src_psql[@]}" -d "$1" -f "$work/latency.sql" >/dev/null
}

make_many() { # N tables of 50 rows, each with a serial key, a unique and a secondary index
    python3 - "$(n "$2")" > "$work/many.sql" <<'PY'
import sys
for i in range(int(sys.argv[1])):
    print(f"create table t{i} (id serial primary key, code text unique, v int);"
          f"create index t{i}_v on t{i} (v);"
          f"insert into t{i} (code, v) select 'c' || g, g % 10 from generate_series(1, 50) g;")
PY
    "${src_psql[@]}" -d "$1" -f "$work/many.sql" >/dev/null
}
make_follow() { # ~1 GB: two keyed tables the workload updates, and the log it inserts into
    "${src_psql[@]}" -d "$1" <<SQL
create table keyed (id bigint primary key, a text, b text, n int);
insert into keyed select g, md5(g::text), repeat('x', 150), 0 from generate_series(1, $(n 2500000)) g;
create table keyed2 (id bigint primary key, a text, b text, n int);
insert into keyed2 select g, md5(g::text), repeat('z', 150), 0 from generate_series(1, $(n 2500000)) g;
create table log_t (id bigserial primary key, at timestamptz not null default now(), v bigint);
SQL
    cat > "$work/follow.sql" <<SQL
\set id random(1, $(n 2500000))
update keyed set n = n + 1 where id = :id;
insert into log_t (v) values (:id);
SQL
}
make_many10k() { make_many "$1" 10000; }
make_many50k() { make_many "$1" 50000; }

results="$work/results.tsv"
: > "$results"

# Every run gets a database of its own; a dataset's databases are all dropped at its end.
# Dropping one between runs would slow the next run down: right after thousands of files are
# deleted, ext4 creates files slowly (it skips inodes freed in the last minute), and each
# contender would pay for the one before it.
dst_db=""
runs_done=0
fresh_target() {
    runs_done=$((runs_done + 1))
    dst_db="bench_dst_$runs_done"
    "${dst_psql[@]}" -d postgres -c "create database $dst_db" >/dev/null
    # Each run starts with nothing left to write from the one before.
    "${dst_psql[@]}" -d postgres -c "checkpoint" >/dev/null
    "${src_psql[@]}" -d postgres -c "checkpoint" >/dev/null
    sync
    sleep "$settle"
}

drop_dataset() {
    local db
    for db in $("${dst_psql[@]}" -d postgres -Atc "select datname from pg_database where datname like 'bench_dst_%'"); do
        "${dst_psql[@]}" -d postgres -c "drop database $db" >/dev/null
    done
    "${src_psql[@]}" -d postgres -c "drop database if exists bench_src" >/dev/null
    sync
    echo "   waiting a minute for the filesystem to settle after the drops"
    sleep 61
}

# CPU seconds spent so far by this shell's commands, the proxy and both servers (see cpu.py).
cpu_now() {
    python3 "$root/bench/cpu.py" "$$" "$proxy_pid" \
        "$(head -n 1 "$work/source/postmaster.pid")" "$(head -n 1 "$work/target/postmaster.pid")"
}

timed() { # label dataset command...
    local label="$1" ds="$2"; shift 2
    local start end cpu0 cpu1
    cpu0=$(cpu_now)
    start=$(date +%s.%N)
    if "$@" > "$work/last.log" 2>&1; then
        end=$(date +%s.%N)
        cpu1=$(cpu_now)
        python3 -c "print('$ds\t$label\t%.2f\t%.2f' % ($end - $start, $cpu1 - $cpu0))" >> "$results"
    else
        echo "   $label failed on $ds (see below)" >&2
        tail -5 "$work/last.log" >&2
    fi
}

run_dataset() { # dataset
    local ds="$1" dst_port_used="$dst_port"
    [ "$ds" = "latency" ] && dst_port_used="$proxy_port"
    local src="postgresql://postgres@127.0.0.1:$src_port/bench_src"
    local dst
    "${src_psql[@]}" -d postgres -c "create database bench_src" >/dev/null
    echo "== dataset $ds: generating"
    "make_$ds" bench_src
    "${src_psql[@]}" -d bench_src -c "vacuum analyze" >/dev/null
    local size
    size=$("${src_psql[@]}" -d bench_src -Atc "select pg_size_pretty(pg_database_size('bench_src'))")
    echo "   source database: $size"
    echo "$size" > "$work/size.$ds"
    local split=(--split-tables-larger-than 0)
    for r in $(seq 1 "$runs"); do
        echo "   round $r of $runs"
        # The order rotates each round, so that no contender always runs first or last.
        local order=(neoncopy pgdump pgdumpplain pgcopydb)
        case "$ds" in
            big) order=(neoncopy neoncopy-split pgdump pgcopydb) ;;
            onekey|nokey) order=(neoncopy neoncopy-split pgdump pgcopydb-split) ;;
            many*) order=(neoncopy pgdump) ;;
        esac
        [ -n "$baseline" ] && order=(neoncopy neoncopy-baseline "${order[@]:1}")
        if [ -n "$only" ]; then
            local kept=()
            for c in "${order[@]}"; do
                case " $only " in *" $c "*) kept+=("$c") ;; esac
            done
            order=("${kept[@]}")
        fi
        local k=$(( (r - 1) % ${#order[@]} ))
        local rotated=("${order[@]:$k}" "${order[@]:0:$k}")
        for c in "${rotated[@]}"; do
            fresh_target
            dst="postgresql://postgres@127.0.0.1:$dst_port_used/$dst_db"
            case "$c" in
                neoncopy)
                    timed neoncopy "$ds" \
                        "$neoncopy" clone -q --source "$src" --target "$dst" --dir "$work/nc" --restart \
                        --table-jobs "$jobs" --index-jobs "$jobs" --restore-jobs "$jobs" "${split[@]}"
                    # neoncopy's own peak memory, as it recorded it (pg_dump's is its own).
                    python3 - "$work/nc/state.db" > "$work/rss.$ds.$r" <<'PY' || true
import sqlite3, sys
row = sqlite3.connect(sys.argv[1]).execute(
    "select value from counter where name = 'peak_rss_kib'").fetchone()
print(row[0] if row else "")
PY
                    # On the many-table datasets: the steps' durations, and how long `list
                    # progress` (the table view, and --summary) takes to answer on the run.
                    case "$ds" in many*)
                        {
                            printf '%s run %s steps:' "$ds" "$r"
                            # This run's lines: the log keeps the earlier runs'.
                            awk '/INFO clone from /{n=NR} {l[NR]=$0} END{for(i=n;i<=NR;i++) print l[i]}' "$work/nc/neoncopy.log" \
                                | sed -n 's/.*INFO \(.*\): done in \(.*\)$/ \1 \2;/p' | tr -d '\n'
                            echo
                            for v in "" "--summary"; do
                                local t0 t1
                                t0=$(date +%s.%N)
                                "$neoncopy" list progress --dir "$work/nc" $v > /dev/null
                                t1=$(date +%s.%N)
                                python3 -c "print('$ds run $r: list progress ${v:-(tables)} answered in %.2f s' % ($t1 - $t0))"
                            done
                        } >> "$work/many.txt" ;;
                    esac
                    ;;
                neoncopy-baseline)
                    timed "neoncopy baseline" "$ds" \
                        "$baseline" clone -q --source "$src" --target "$dst" --dir "$work/nc" --restart \
                        --table-jobs "$jobs" --index-jobs "$jobs" --restore-jobs "$jobs" "${split[@]}" ;;
                neoncopy-split)
                    timed "neoncopy --split-tables-larger-than 100MB" "$ds" \
                        "$neoncopy" clone -q --source "$src" --target "$dst" --dir "$work/nc" --restart \
                        --table-jobs "$jobs" --index-jobs "$jobs" --split-tables-larger-than 100MB \
                        --split-max-parts "$jobs"
                    # How even the parts came out, in rows.
                    python3 - "$work/nc/state.db" "$ds" >> "$work/parts.txt" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
for table, in db.execute("select distinct table_name from unit where parts > 1"):
    rows = [r for r, in db.execute("select rows from unit where table_name = ? order by part", (table,))]
    spread = (max(rows) - min(rows)) / max(rows) * 100 if rows and max(rows) else 0
    print(f"{sys.argv[2]}: {table}: {len(rows)} parts, rows {', '.join(map(str, rows))} "
          f"(largest {spread:.1f}% above smallest)")
PY
                    ;;
                pgdump)
                    timed "pg_dump -Fd -j$jobs | pg_restore -j$jobs" "$ds" bash -c \
                        "rm -rf '$work/dump' && '$bindir/pg_dump' -Fd -j $jobs -f '$work/dump' '$src' && '$bindir/pg_restore' -j $jobs -d '$dst' '$work/dump'" ;;
                pgdumpplain)
                    timed "pg_dump | psql" "$ds" bash -c \
                        "'$bindir/pg_dump' '$src' | '$bindir/psql' -X -q -o /dev/null '$dst'" ;;
                pgcopydb|pgcopydb-split)
                    if [ "$have_pgcopydb" = 1 ]; then
                        local pgcopydb_split=()
                        [ "$c" = pgcopydb-split ] && pgcopydb_split=(--split-tables-larger-than 100MB)
                        timed "pgcopydb clone${pgcopydb_split[*]:+ ${pgcopydb_split[*]}}" "$ds" env \
                            PGCOPYDB_SOURCE_PGURI="$src" PGCOPYDB_TARGET_PGURI="$dst" \
                            pgcopydb clone --dir "$work/pgcopydb" --restart --table-jobs "$jobs" \
                            --index-jobs "$jobs" --no-owner --no-acl "${pgcopydb_split[@]}"
                    fi ;;
            esac
        done
    done
}

follow_results="$work/follow.tsv"
: > "$follow_results"
now() { date +%s.%N; }
src_q() { "${src_psql[@]}" -d bench_src -Atc "$1"; }
dst_q() { "${dst_psql[@]}" -d "$dst_db" -Atc "$1"; }
# What the workload changed, on one side: rows and sum of the updated counter, rows and sum of
# the log. Equal on both sides: nothing lost, nothing applied twice.
follow_digest() { # psql-function
    "$1" "select (select count(*) || '/' || sum(n) from keyed) || ' ' || (select count(*) || '/' || coalesce(sum(v), 0) from log_t)"
}

follow_once() { # contender round
    local c="$1" r="$2" src="postgresql://postgres@127.0.0.1:$src_port/bench_src" dst pgb pc=""
    fresh_target
    dst="postgresql://postgres@127.0.0.1:$dst_port/$dst_db"
    "$bindir/pgbench" -n -h 127.0.0.1 -p "$src_port" -U postgres -f "$work/follow.sql" \
        -R "$follow_rate" -T 100000 bench_src > "$work/pgbench.log" 2>&1 & pgb=$!
    sleep 3
    local t0 t1 t2 t3 t4 m1 d1 d2 waited=0
    t0=$(now)
    case "$c" in
        neoncopy)
            if ! "$neoncopy" clone -q --follow --source "$src" --target "$dst" --dir "$work/ncf" \
                --restart --table-jobs "$jobs" --index-jobs "$jobs" --restore-jobs "$jobs" \
                > "$work/last.log" 2>&1; then
                echo "   neoncopy clone --follow failed:" >&2; tail -5 "$work/last.log" >&2
                kill "$pgb"; return
            fi ;;
        pgcopydb)
            PGCOPYDB_SOURCE_PGURI="$src" PGCOPYDB_TARGET_PGURI="$dst" \
                pgcopydb clone --follow --dir "$work/pgcf" --restart --table-jobs "$jobs" \
                --index-jobs "$jobs" > "$work/pgcf.log" 2>&1 & pc=$!
            # Its initial copy is done once the keys are built; it then applies the backlog.
            until [ "$(dst_q "select count(*) from pg_indexes where indexname in ('keyed_pkey', 'keyed2_pkey', 'log_t_pkey')" 2>/dev/null)" = 3 ]; do
                kill -0 "$pc" 2>/dev/null || { echo "   pgcopydb ended early:" >&2; tail -5 "$work/pgcf.log" >&2; kill "$pgb"; return; }
                sleep 0.2
            done ;;
    esac
    t1=$(now)
    # The backlog: what the source committed that the target lacks when the copy is done.
    m1=$(src_q "select coalesce(max(id), 0) from log_t")
    d1=$(dst_q "select coalesce(max(id), 0) from log_t")
    until [ "$(dst_q "select coalesce(max(id), 0) >= $m1 from log_t")" = t ]; do
        sleep 0.2
        waited=$((waited + 1))
        [ "$waited" -gt 900 ] && break
    done
    t2=$(now)
    d2=$(dst_q "select coalesce(max(id), 0) from log_t")
    sleep 5
    kill "$pgb"; wait "$pgb" 2>/dev/null || true
    t3=$(now)
    case "$c" in
        neoncopy)
            "$neoncopy" cutover -q --source "$src" --target "$dst" --dir "$work/ncf" --yes \
                --counts-only > "$work/cutover.log" 2>&1 || { echo "   neoncopy cutover failed:" >&2; tail -5 "$work/cutover.log" >&2; } ;;
        pgcopydb)
            PGCOPYDB_SOURCE_PGURI="$src" pgcopydb stream sentinel set endpos --current > "$work/sentinel.log" 2>&1
            # pgcopydb 0.10 may never reach its end position: given up after 3 minutes.
            local polls=0
            while kill -0 "$pc" 2>/dev/null && [ "$polls" -lt 900 ]; do
                sleep 0.2
                polls=$((polls + 1))
            done
            if kill -0 "$pc" 2>/dev/null; then
                echo "   pgcopydb did not reach its end position within 3 minutes: stopped" >&2
                pkill -9 -f "pgcopydb clone --follow --dir $work/pgcf" 2>/dev/null || true
            fi
            wait "$pc" 2>/dev/null || true ;;
    esac
    t4=$(now)
    local same=no
    [ "$(follow_digest src_q)" = "$(follow_digest dst_q)" ] && same=yes
    # Every change counts twice: an UPDATE and an INSERT per transaction.
    python3 -c "print('$c\t$r\t%.2f\t%.0f\t%.2f\t$same\t%s' % ($t1 - $t0, ($d2 - $d1) * 2 / max($t2 - $t1, 0.001), $t4 - $t3, 'caught up' if $waited <= 900 else 'not caught up in 3 min'))" >> "$follow_results"
    # A clean source for the next run: pgcopydb's own leftovers (its processes, slot, schema
    # and replication origin), and the workload's changes.
    pkill -9 -f "pgcopydb clone --follow --dir $work/pgcf" 2>/dev/null || true
    while pgrep -f "pgcopydb clone --follow --dir $work/pgcf" >/dev/null; do sleep 0.5; done
    src_q "select pg_terminate_backend(active_pid) from pg_replication_slots where slot_name = 'pgcopydb' and active_pid is not null" >/dev/null || true
    sleep 1
    src_q "select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = 'pgcopydb'" >/dev/null || true
    src_q "drop schema if exists pgcopydb cascade" >/dev/null 2>&1 || true
    dst_q "select pg_replication_origin_drop(roname) from pg_replication_origin where roname = 'pgcopydb'" >/dev/null 2>&1 || true
    src_q "truncate log_t; update keyed set n = 0 where n <> 0" >/dev/null
}

run_follow() {
    "${src_psql[@]}" -d postgres -c "create database bench_src" >/dev/null
    echo "== dataset follow: generating"
    make_follow bench_src
    "${src_psql[@]}" -d bench_src -c "vacuum analyze" >/dev/null
    local size
    size=$(src_q "select pg_size_pretty(pg_database_size('bench_src'))")
    echo "   source database: $size, workload $follow_rate transactions/s"
    echo "$size" > "$work/size.follow"
    local order=(neoncopy)
    [ "$have_pgcopydb" = 1 ] && [ -e /usr/lib/postgresql/15/lib/wal2json.so ] && order+=(pgcopydb)
    if [ -n "$only" ]; then
        local kept=() c
        for c in "${order[@]}"; do
            case " $only " in *" $c "*) kept+=("$c") ;; esac
        done
        order=("${kept[@]}")
    fi
    for r in $(seq 1 "$runs"); do
        echo "   round $r of $runs"
        local k=$(( (r - 1) % ${#order[@]} ))
        for c in "${order[@]:$k}" "${order[@]:0:$k}"; do
            follow_once "$c" "$r"
        done
    done
}

for ds in $datasets; do
    if [ "$ds" = follow ]; then
        run_follow
    else
        run_dataset "$ds"
    fi
    drop_dataset
done

echo
echo "== results: median wall time of $runs run(s), $jobs jobs each, $(nproc) cores"
python3 - "$results" "$work" <<'PY'
import sys, statistics, glob, os, collections
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
work = sys.argv[2]
data, cpu = {}, {}
for ds, label, secs, cpu_secs in rows:
    data.setdefault(ds, {}).setdefault(label, []).append(float(secs))
    cpu.setdefault(ds, {}).setdefault(label, []).append(float(cpu_secs))
print(f"{'dataset':<10} {'size':>8}  {'contender':<44} {'median s':>9} {'runs':>5} {'vs fastest peer':>16}"
      f" {'CPU s':>7} {'CPU vs least peer':>18}")
for ds, by in data.items():
    size = open(os.path.join(work, f"size.{ds}")).read().strip() if os.path.exists(os.path.join(work, f"size.{ds}")) else "?"
    peers = {k: statistics.median(v) for k, v in by.items() if not k.startswith("neoncopy")}
    fastest = min(peers.values()) if peers else None
    peers_cpu = {k: statistics.median(v) for k, v in cpu[ds].items() if not k.startswith("neoncopy")}
    least = min(peers_cpu.values()) if peers_cpu else None
    for label, times in sorted(by.items(), key=lambda kv: statistics.median(kv[1])):
        m = statistics.median(times)
        c = statistics.median(cpu[ds][label])
        ratio = f"{m / fastest:.2f}x" if fastest else "-"
        cpu_ratio = f"{c / least:.2f}x" if least else "-"
        print(f"{ds:<10} {size:>8}  {label:<44} {m:>9.2f} {len(times):>5} {ratio:>16} {c:>7.1f} {cpu_ratio:>18}")
rss = collections.defaultdict(list)
for f in glob.glob(os.path.join(work, "rss.*")):
    try:
        rss[os.path.basename(f).split(".")[1]].append(int(open(f).read().strip().splitlines()[-1]))
    except Exception:
        pass
if rss:
    print("\nneoncopy peak memory (its own process, pg_dump's not included; max over runs):")
    for ds in sorted(rss):
        print(f"  {ds:<10} {max(rss[ds]) / 1024:.1f} MiB")
PY
if [ -s "$work/many.txt" ]; then
    echo
    echo "== many tables: neoncopy's steps and list progress"
    cat "$work/many.txt"
fi
if [ -s "$work/parts.txt" ]; then
    echo
    echo "== parts of split tables (neoncopy --split-tables-larger-than 100MB)"
    sort -u "$work/parts.txt"
fi
if [ -s "$follow_results" ]; then
    echo
    echo "== online migration (dataset follow): medians of $runs run(s), $jobs jobs, writes at $follow_rate transactions/s"
    python3 - "$follow_results" <<'PY'
import sys, statistics, collections
by = collections.defaultdict(list)
for line in open(sys.argv[1]):
    c, r, clone, rate, cut, same, caught = line.rstrip("\n").split("\t")
    by[c].append((float(clone), float(rate), float(cut), same, caught))
print(f"{'contender':<10} {'initial copy s':>15} {'backlog applied/s':>18} {'cutover s':>10}  identical  runs")
for c, rows in by.items():
    med = lambda i: statistics.median(x[i] for x in rows)
    same = ", ".join(sorted(set(x[3] for x in rows)))
    caught = ", ".join(sorted(set(x[4] for x in rows)))
    print(f"{c:<10} {med(0):>15.1f} {med(1):>18.0f} {med(2):>10.2f}  {same:<9}  {len(rows)} ({caught})")
PY
fi
