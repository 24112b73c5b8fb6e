#!/usr/bin/env bash
# The PostgreSQL stand-in's entry point (see Dockerfile): on the first start of `postgres`, an empty PGDATA is
# initialised with POSTGRES_USER (default postgres) as the superuser and POSTGRES_PASSWORD as its password, remote
# clients authenticate with that password (scram-sha-256), and POSTGRES_DB (default: the user's name) is created;
# then the server runs in the foreground on every interface, as the postgres user. Anything else runs as given.
set -euo pipefail

if [[ "${1:-}" == postgres && $(id -u) == 0 ]]; then
    # As the official image: started as root, it makes PGDATA the postgres user's (a mounted volume is root's) and
    # steps down to that user.
    mkdir -p "$PGDATA"
    chown postgres:postgres "$PGDATA"
    chmod 700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

if [[ "${1:-}" == postgres ]]; then
    user=${POSTGRES_USER:-postgres}
    database=${POSTGRES_DB:-$user}
    if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
        if [[ -z "${POSTGRES_PASSWORD:-}" ]]; then
            echo "Error: Database is uninitialized and superuser password is not specified: set POSTGRES_PASSWORD" >&2
            exit 1
        fi
        password_file=$(mktemp)
        printf '%s\n' "$POSTGRES_PASSWORD" >"$password_file"
        initdb --username="$user" --pwfile="$password_file" --auth-local=trust --auth-host=scram-sha-256 \
            --encoding=UTF8 >/dev/null
        rm -f "$password_file"
        printf 'host all all all scram-sha-256\n' >>"$PGDATA/pg_hba.conf"
        if [[ "$database" != postgres ]]; then
            pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
            psql -v ON_ERROR_STOP=1 --username "$user" --dbname postgres -c "CREATE DATABASE \"$database\"" >/dev/null
            pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
        fi
        echo "PostgreSQL init process complete; ready for start up."
    fi
    shift
    exec postgres -c listen_addresses='*' "$@"
fi
exec "$@"
