#!/usr/bin/env bash
# Makes sure PostgreSQL server binaries (initdb, pg_ctl, postgres), the client programs
# (pg_dump, pg_restore, psql), OpenSSL's headers (native-tls builds against them) and the
# openssl program (the TLS tests make certificates with it) are installed, and the tests' own
# extension in the servers' extension directory. As root it installs Debian's packages with
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

packages=""
have_server || packages="postgresql-$PG_MAJOR postgresql-client-$PG_MAJOR"
if ! command -v pkg-config >/dev/null || ! pkg-config --exists openssl; then
    packages="$packages pkg-config libssl-dev"
fi
command -v openssl >/dev/null || packages="$packages openssl"
# The tests' own extension (tests/fixtures/extension), in every installed server's extension
# directory: it has configuration tables, which no extension PostgreSQL ships has.
install_test_extension() {
    local here d share f
    here="$(cd "$(dirname "$0")/.." && pwd)/tests/fixtures/extension"
    for d in /usr/lib/postgresql/*/bin; do
        [ -x "$d/pg_config" ] || continue
        share="$("$d/pg_config" --sharedir)/extension"
        [ -d "$share" ] || continue
        for f in "$here"/*; do
            cmp -s "$f" "$share/$(basename "$f")" && continue
            if [ "$(id -u)" -ne 0 ]; then
                echo "The tests' extension is not installed. Install it with:" >&2
                echo "  sudo install -m 644 $here/* $share/" >&2
                exit 1
            fi
            install -m 644 "$f" "$share/"
        done
    done
}

if [ -z "$packages" ]; then
    install_test_extension
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "Packages needed to build and test neoncopy are missing. Install them with:" >&2
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
pkg-config --exists openssl || { echo "OpenSSL headers still missing after apt-get install" >&2; exit 1; }
install_test_extension
