#!/usr/bin/env bash
# Makes sure PostgreSQL server binaries (initdb, pg_ctl, postgres) and the client programs
# (pg_dump, pg_restore, psql) are installed. As root it installs Debian's packages with
# apt-get; otherwise it prints the exact command and fails.
set -euo pipefail

PG_MAJOR="${PG_MAJOR:-15}"

have_server() {
    local d
    for d in /usr/lib/postgresql/*/bin; do
        [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ] \
            && [ -x "$d/pg_dump" ] && [ -x "$d/pg_restore" ] && return 0
    done
    return 1
}

if have_server; then
    exit 0
fi

packages="postgresql-$PG_MAJOR postgresql-client-$PG_MAJOR"
if [ "$(id -u)" -ne 0 ]; then
    echo "PostgreSQL server binaries are missing. Install them with:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y $packages" >&2
    exit 1
fi

echo "installing $packages with apt-get" >&2
# No cluster of the package's own: neoncopy's tests and demo start their own servers.
mkdir -p /etc/postgresql-common
if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
    echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q -o Dpkg::Options::=--force-confold $packages
have_server || { echo "PostgreSQL binaries still missing after apt-get install" >&2; exit 1; }
