#!/usr/bin/env bash
# Run the test suite: set up the checkout, make sure local PostgreSQL answers, then pytest.
#
# Arguments go to pytest unchanged (its configuration lives in pyproject.toml). Tests that
# need PostgreSQL skip when it is absent, except in CI (CI=true) where they fail.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh

postgres_ready() { pg_isready -q -h 127.0.0.1 -p 5432 >/dev/null 2>&1; }

start_postgres() {
    command -v pg_isready >/dev/null 2>&1 || return 0
    postgres_ready && return 0
    if ! command -v pg_ctlcluster >/dev/null 2>&1 || [[ ! -d /etc/postgresql ]]; then
        echo "test: PostgreSQL is not answering on 127.0.0.1:5432 and no cluster to start" >&2
        return 0
    fi
    local cluster version
    for cluster in /etc/postgresql/*/main; do
        [[ -d "$cluster" ]] || continue
        version="$(basename "$(dirname "$cluster")")"
        echo "test: starting PostgreSQL $version cluster 'main'" >&2
        pg_ctlcluster --skip-systemctl-redirect "$version" main start \
            || echo "test: could not start PostgreSQL $version (not root?)" >&2
        postgres_ready && return 0
    done
    for _ in $(seq 20); do
        postgres_ready && return 0
        sleep 0.5
    done
    echo "test: PostgreSQL still not answering; its tests will skip (or fail in CI)" >&2
}

start_postgres
exec .venv/bin/pytest "$@"
