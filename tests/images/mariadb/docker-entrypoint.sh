#!/bin/bash
# First start: create the database and user the official mysql image would, from
# MYSQL_ROOT_PASSWORD, MYSQL_DATABASE, MYSQL_USER, MYSQL_PASSWORD (each also as NAME_FILE).
set -euo pipefail

file_env() {
    local name=$1 file_name="${1}_FILE"
    if [ -n "${!name:-}" ] && [ -n "${!file_name:-}" ]; then
        echo "mariadb-entrypoint: both $name and $file_name are set" >&2; exit 2
    fi
    if [ -n "${!file_name:-}" ]; then
        export "$name"="$(< "${!file_name}")"
        unset "$file_name"
    fi
}

if [ "${1:-}" = mariadbd ]; then
    for name in MYSQL_ROOT_PASSWORD MYSQL_PASSWORD; do file_env "$name"; done
    if [ ! -d /var/lib/mysql/mysql ]; then
        : "${MYSQL_ROOT_PASSWORD:?mariadb-entrypoint: MYSQL_ROOT_PASSWORD is required}"
        echo "mariadb-entrypoint: initialising /var/lib/mysql" >&2
        chown mysql:mysql /var/lib/mysql
        mariadb-install-db --user=mysql --datadir=/var/lib/mysql --skip-test-db \
            --auth-root-authentication-method=socket >/dev/null
        mariadbd --user=mysql --skip-networking --socket=/run/mysqld/init.sock &
        pid=$!
        for _ in $(seq 60); do
            mariadb --socket=/run/mysqld/init.sock -e 'SELECT 1' >/dev/null 2>&1 && break
            sleep 1
        done
        {
            echo "ALTER USER 'root'@'localhost' IDENTIFIED BY '${MYSQL_ROOT_PASSWORD}';"
            if [ -n "${MYSQL_DATABASE:-}" ]; then
                echo "CREATE DATABASE IF NOT EXISTS \`${MYSQL_DATABASE}\`;"
            fi
            if [ -n "${MYSQL_USER:-}" ] && [ -n "${MYSQL_PASSWORD:-}" ]; then
                echo "CREATE USER '${MYSQL_USER}'@'%' IDENTIFIED BY '${MYSQL_PASSWORD}';"
                echo "GRANT ALL ON \`${MYSQL_DATABASE}\`.* TO '${MYSQL_USER}'@'%';"
            fi
        } | mariadb --socket=/run/mysqld/init.sock
        kill "$pid"
        wait "$pid"
        echo "mariadb-entrypoint: initialised" >&2
    fi
    set -- "$@" --user=mysql --bind-address=0.0.0.0
fi
exec "$@"
