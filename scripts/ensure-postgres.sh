#!/usr/bin/env bash
# Make sure a PostgreSQL server is there for the tests, and print the SQLAlchemy URL to use.
#
#   scripts/ensure-postgres.sh         prints the URL (messages go to stderr)
#   scripts/ensure-postgres.sh --stop  stops the throwaway cluster this script started, if any
#
# If the server at OPENVISIT_TEST_PG_HOST:OPENVISIT_TEST_PG_PORT (default 127.0.0.1:5432) answers as
# user postgres on database `test`, its URL is printed and nothing is started. Otherwise a throwaway
# cluster is made with the installed binaries (Debian's postgresql is installed first when there are
# none) in a temporary directory, with trust auth, on a free port from OPENVISIT_TEST_PG_FALLBACK_PORT
# (default 55432) up. It never gives up silently: when no server can be had it exits non-zero.
# If OPENVISIT_TEST_PG_URL is already set, that server is used as it is, and only checked.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HOST="${OPENVISIT_TEST_PG_HOST:-127.0.0.1}"
PORT="${OPENVISIT_TEST_PG_PORT:-5432}"
FALLBACK_PORT="${OPENVISIT_TEST_PG_FALLBACK_PORT:-55432}"
STATE="${OPENVISIT_TEST_PG_STATE:-$ROOT/var/test-postgres.state}"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"

say() { echo "ensure-postgres: $*" >&2; }
die() { say "$*"; exit 1; }

# True when a server answers a query at this libpq URL (psql if present, else psycopg from the venv).
answers() {
    local url="$1"
    if command -v psql >/dev/null; then
        PGCONNECT_TIMEOUT=3 psql -X -q -w -d "$url" -c 'SELECT 1' >/dev/null 2>&1
    elif [[ -x "$PYTHON" ]]; then
        "$PYTHON" -c 'import sys, psycopg; psycopg.connect(sys.argv[1], connect_timeout=3).close()' \
            "$url" >/dev/null 2>&1
    else
        die "neither psql nor $PYTHON (with psycopg) is there to check $url"
    fi
}

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Run a command as the cluster's owner: initdb and postgres refuse to run as root.
as_owner() {
    if [[ $EUID -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

stop_cluster() {
    [[ -f "$STATE" ]] || return 0
    local dir
    dir="$(cat "$STATE")"
    if [[ -d "$dir" ]]; then
        say "stopping the throwaway cluster in $dir"
        as_owner "$(pg_bin)/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
        rm -rf "$dir"
    fi
    rm -f "$STATE"
}

# The newest installed PostgreSQL's bin directory, or nothing.
pg_bin() {
    local initdb
    initdb="$(ls -1d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1 || true)"
    [[ -n "$initdb" ]] && dirname "$initdb"
}

install_postgres() {
    [[ $EUID -eq 0 ]] || die "no PostgreSQL binaries under /usr/lib/postgresql and not root to install them"
    say "installing Debian's postgresql (apt-get)"
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql postgresql-contrib >&2
}

start_cluster() {
    local bin port dir
    bin="$(pg_bin || true)"
    if [[ -z "$bin" ]]; then
        install_postgres
        bin="$(pg_bin || true)"
        [[ -n "$bin" ]] || die "apt-get installed postgresql but no initdb was found"
    fi
    if [[ $EUID -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
        useradd --system --no-create-home --shell /usr/sbin/nologin postgres
    fi
    port="$FALLBACK_PORT"
    while port_busy "$port"; do
        port=$((port + 1))
        ((port < FALLBACK_PORT + 100)) || die "no free port from $FALLBACK_PORT up"
    done
    # Under /tmp, not var/: the repository may sit where the postgres user cannot reach.
    dir="$(mktemp -d "${TMPDIR:-/tmp}/openvisit-pg.XXXXXX")"
    mkdir -p "$(dirname "$STATE")"
    echo "$dir" >"$STATE"
    [[ $EUID -eq 0 ]] && chown postgres: "$dir"
    say "starting a throwaway PostgreSQL ($bin) in $dir on port $port"
    as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 --locale=C >/dev/null
    # A cluster that lives for one test run needs no durability.
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start -o \
        "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        >/dev/null || { cat "$dir/server.log" >&2; die "the throwaway cluster did not start"; }
    answers "postgresql://postgres@127.0.0.1:$port/postgres" || die "the throwaway cluster does not answer"
    echo "postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
}

main() {
    if [[ "${1:-}" == "--stop" ]]; then
        stop_cluster
        return
    fi
    [[ $# -eq 0 ]] || die "usage: $0 [--stop]"
    if [[ -n "${OPENVISIT_TEST_PG_URL:-}" ]]; then
        answers "${OPENVISIT_TEST_PG_URL/+psycopg/}" || die "OPENVISIT_TEST_PG_URL=$OPENVISIT_TEST_PG_URL does not answer"
        echo "$OPENVISIT_TEST_PG_URL"
        return
    fi
    stop_cluster # a cluster left over by an interrupted run
    if answers "postgresql://postgres@$HOST:$PORT/test"; then
        say "using the PostgreSQL server at $HOST:$PORT"
        echo "postgresql+psycopg://postgres@$HOST:$PORT/test"
        return
    fi
    say "nothing answers at $HOST:$PORT"
    start_cluster
}

main "$@"
