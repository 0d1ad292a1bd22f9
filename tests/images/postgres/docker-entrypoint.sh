#!/bin/bash
# First start: make the cluster the official postgres image would, from POSTGRES_PASSWORD
# (required), POSTGRES_USER (the superuser, default postgres) and POSTGRES_DB (default
# POSTGRES_USER), each also as NAME_FILE. The server runs as the postgres user and listens on
# 0.0.0.0:5432, with scram-sha-256 passwords for every connection over TCP.
set -euo pipefail

say() { echo "postgres-entrypoint: $*" >&2; }

file_env() {
    local name=$1 file_name="${1}_FILE"
    if [ -n "${!name:-}" ] && [ -n "${!file_name:-}" ]; then
        say "both $name and $file_name are set"; exit 2
    fi
    if [ -n "${!file_name:-}" ]; then
        export "$name"="$(< "${!file_name}")"
        unset "$file_name"
    fi
}

if [ "${1:-}" = postgres ]; then
    if [ "$(id -u)" = 0 ]; then
        # Root only to hand the data folder (a fresh volume or bind mount) to postgres.
        mkdir -p "$PGDATA" /run/postgresql
        chown postgres:postgres "$PGDATA" /run/postgresql
        chmod 0700 "$PGDATA"
        exec setpriv --reuid=postgres --regid=postgres --init-groups -- "$0" "$@"
    fi
    for name in POSTGRES_PASSWORD POSTGRES_USER POSTGRES_DB; do file_env "$name"; done
    if [ ! -s "$PGDATA/PG_VERSION" ]; then
        : "${POSTGRES_PASSWORD:?postgres-entrypoint: POSTGRES_PASSWORD is required}"
        user=${POSTGRES_USER:-postgres}
        database=${POSTGRES_DB:-$user}
        say "initialising $PGDATA"
        pwfile=$(mktemp)
        printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
        initdb -D "$PGDATA" --username="$user" --pwfile="$pwfile" --encoding=UTF8 \
            --auth-local=trust --auth-host=scram-sha-256 --no-instructions >/dev/null
        rm -f "$pwfile"
        # initdb's host lines are for loopback only: other containers come over the network.
        echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
        if [ "$database" != postgres ]; then
            # Set up over the unix socket only: nothing reaches the server before it is ready.
            pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
            echo 'CREATE DATABASE :"database";' |
                psql -v ON_ERROR_STOP=1 -v database="$database" -q --username="$user" \
                    --dbname=postgres
            pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
        fi
        say "initialised: user $user, database $database"
    fi
    set -- "$@" -c listen_addresses=0.0.0.0 -c port=5432
fi
exec "$@"
