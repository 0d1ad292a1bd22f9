#!/bin/sh
# Rendered by configgen from stack/stack.yaml: edit that file and run `configgen render`;
# changes made here are overwritten.
# The nginx containers' entrypoint (compose/production.yml runs two).
#
# `nginx` serves MLflow: its master runs as root (it reads the TLS key, a root-only compose
# secret) and its workers as www-data (nginx.conf's `user`); they never read the users file.
#
# `verifier` checks passwords: it runs unprivileged, master and workers, as www-data with the
# group of the mounted users folder as its only group. That folder stays 0750 (its files 0640)
# on the host, in the group of whoever ran `configgen htpasswd` (www-data when root ran it), so
# the verifier can read it and nothing else of the host's secrets, whatever that user's ids.
# Its root file system is read-only: nothing is added to /etc/passwd or /etc/group.
set -eu

if [ "${1:-}" = verifier ]; then
    shift
    gid=$(stat -c %g /etc/nginx/secrets)
    if [ "$gid" = 0 ]; then
        echo "nginx-entrypoint: the users folder (secrets/nginx on the host) belongs to group" \
             "root, which the verifier never joins; run \`configgen init\` there to hand it" \
             "to group www-data" >&2
        exit 2
    fi
    if [ ! -r /etc/nginx/secrets/htpasswd ]; then
        echo "nginx-entrypoint: no /etc/nginx/secrets/htpasswd; add a user with" \
             "\`configgen htpasswd user add NAME\`" >&2
    fi
    # A verifier killed without its clean-up leaves its socket behind in the shared volume,
    # and nginx cannot bind over it. Its pid file, temp files and socket are its own.
    rm -f /run/mlflow-auth/auth.sock
    chown www-data /run /run/mlflow-auth /var/lib/nginx
    # nginx opens its logs by name (/dev/stdout, /dev/stderr): Docker's pipes behind them are
    # root's, 0600, so they become the verifier's to open too.
    chown www-data /proc/self/fd/1 /proc/self/fd/2
    # -e: the root file system is read-only; log start-up errors to Docker, not to a file.
    exec setpriv --reuid=www-data --regid="$gid" --clear-groups --no-new-privs -- \
        nginx -c /etc/nginx/nginx-verifier.conf -e stderr -g "daemon off;" "$@"
fi

if [ "${1:-}" = nginx ]; then
    set -- "$@" -e stderr -g "daemon off;"
fi
exec "$@"
