#!/usr/bin/env bash
# The whole suite: formatting, lints, unit tests and the integration tests against real
# PostgreSQL servers that the tests start themselves.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-deps.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --locked --all-targets -- -D warnings
echo "== cargo test"
cargo test --locked --all-targets
