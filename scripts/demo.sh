#!/usr/bin/env bash
# Demo: builds neoncopy, starts two throwaway local PostgreSQL servers, loads a sample
# database (the users table of Neon's migration guide and a small shop around it), clones it
# with `neoncopy clone --no-owner --no-acl` onto a target whose role is no superuser (as on
# Neon), and shows the result. KEEP=1 leaves the servers running afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"

scripts/ensure-deps.sh
bindir="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"

if [ -n "${NEONCOPY_BIN:-}" ]; then
    neoncopy="$NEONCOPY_BIN"    # a build of your own (the tests run the demo with theirs)
else
    echo "== building neoncopy (release)"
    cargo build --release --locked --quiet
    neoncopy="$root/target/release/neoncopy"
fi

work="$(mktemp -d /tmp/neoncopy-demo.XXXXXX)"
chmod 755 "$work"
# shellcheck source=scripts/lib/clusters.sh
. scripts/lib/clusters.sh

stop() {
    if [ "${KEEP:-0}" = "1" ]; then
        echo "servers left running: source on port $src_port, target on $dst_port ($work)"
        return
    fi
    stop_clusters
    rm -rf "$work"
}
trap stop EXIT

src_port="$(free_port)"
dst_port="$(free_port "$src_port")"
echo "== starting a source server on port $src_port and a target server on port $dst_port"
start_cluster source "$src_port"
start_cluster target "$dst_port"

psql_src=("$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$src_port" -U postgres)
psql_dst=("$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$dst_port" -U postgres)

echo "== loading the sample database into the source (scripts/sample.sql)"
"${psql_src[@]}" -c "create database shop"
"${psql_src[@]}" -d shop -f scripts/sample.sql

echo "== preparing a Neon-like target: role neondb_owner (no superuser) owns database neondb"
"${psql_dst[@]}" -c "create role neondb_owner login createdb createrole" \
    -c "grant pg_read_all_data, pg_write_all_data to neondb_owner" \
    -c "create database neondb owner neondb_owner"

export NEONCOPY_SOURCE_PGURI="postgresql://postgres@127.0.0.1:$src_port/shop"
export NEONCOPY_TARGET_PGURI="postgresql://neondb_owner@127.0.0.1:$dst_port/neondb"
echo "== neoncopy clone --no-owner --no-acl"
echo "   NEONCOPY_SOURCE_PGURI=$NEONCOPY_SOURCE_PGURI"
echo "   NEONCOPY_TARGET_PGURI=$NEONCOPY_TARGET_PGURI"
"$neoncopy" clone --no-owner --no-acl --dir "$work/neoncopy"

echo "== the result: rows per table on source and target"
count_rows() {
    "$@" -At -c "select name || '|' || n from (
                   select 'users' as name, count(*) as n from users
                   union all select 'products', count(*) from products
                   union all select 'orders', count(*) from orders
                   union all select 'order_lines', count(*) from order_lines
                   union all select 'order_totals (view)', count(*) from order_totals) x
                 order by name"
}
LC_ALL=C join -t'|' <(count_rows "${psql_src[@]}" -d shop) <(count_rows "${psql_dst[@]}" -d neondb) \
    | awk -F'|' 'BEGIN { printf "%-22s %10s %10s\n", "table", "source", "target" }
                 { printf "%-22s %10s %10s\n", $1, $2, $3 }'
echo
echo "== users on the target (as in Neon's guide)"
"${psql_dst[@]}" -d neondb -c '\d users' -c "select id, username, email from users order by id limit 2"
echo
echo "== the proof: neoncopy compare data (row counts and checksums of every table, both sides)"
if "$neoncopy" compare data --dir "$work/neoncopy"; then
    echo "compare data exit code: 0 (the target holds exactly the source's rows)"
else
    code=$?
    echo "compare data exit code: $code (see above)"
    exit "$code"
fi
