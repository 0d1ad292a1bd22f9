#!/bin/sh
# The nginx container's entrypoint. nginx's workers must read the htpasswd file, which stays
# 0640 on the host, owned by whoever ran `configgen htpasswd`: they run as www-data with the
# group of the mounted folder, so they can read it and nothing else of the host's secrets.
set -eu

if [ "${1:-}" = verifier ]; then
    # A verifier killed without its clean-up leaves its socket behind in the shared volume,
    # and nginx cannot bind over it.
    rm -f /run/mlflow-auth/auth.sock
    shift
    set -- nginx -c /etc/nginx/nginx-verifier.conf "$@"
fi

if [ "${1:-}" = nginx ]; then
    gid=$(stat -c %g /etc/nginx/secrets)
    group=$(getent group "$gid" | cut -d: -f1)
    if [ -z "$group" ]; then
        groupadd --gid "$gid" htpasswd
        group=htpasswd
    fi
    if [ ! -r /etc/nginx/secrets/htpasswd ]; then
        echo "nginx-entrypoint: no readable htpasswd in /etc/nginx/secrets; add a user with" \
             "\`configgen htpasswd user add NAME\`" >&2
    fi
    # -e: the root file system is read-only; log start-up errors to Docker, not to a file.
    set -- "$@" -e stderr -g "daemon off; user www-data $group;"
fi
exec "$@"
