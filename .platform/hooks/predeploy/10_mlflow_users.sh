#!/bin/bash
# Rendered by configgen from stack/stack.yaml: edit that file and run `configgen render`;
# changes made here are overwritten.
#
# Elastic Beanstalk hook, predeploy (application deployments).
# Writes nginx's users file from the MLFLOW_HTPASSWD environment secret (or property),
# before EB (re)starts nginx. A deployment without users fails here, with the reason in
# /var/log/eb-hooks.log, instead of answering 401 to everyone. The value is never printed.
set -euo pipefail

folder=/etc/nginx/secrets
users_file="$folder/htpasswd"
generation_file="$folder/htpasswd.generation"

name=MLFLOW_HTPASSWD

fail() {
    echo "mlflow users: $*" >&2
    exit 1
}

value="${!name:-}"
if [ -z "$value" ] && [ -x /opt/elasticbeanstalk/bin/get-config ]; then
    value="$(/opt/elasticbeanstalk/bin/get-config environment -k "$name" 2>/dev/null || true)"
fi
# The users file as configgen writes it, or (for an environment property, which holds one
# line) its base64: base64 has no ':', every users file has one.
if [ -n "${value//[[:space:]]/}" ] && [[ "$value" != *:* ]]; then
    value="$(printf '%s' "$value" | base64 -d 2>/dev/null)" || fail "$name: neither a users file nor its base64"
fi
entries="$(printf '%s\n' "$value" | tr -d '\r' | sed '/^[[:space:]]*$/d')"
if [ -z "$entries" ]; then
    fail "$name is missing or empty, so nobody could log in. Put the users file" \
         "(configgen htpasswd user add NAME) in the secret that elastic_beanstalk.secrets.htpasswd" \
         "names, or set the property: see docs/elastic-beanstalk.md, 'Users'."
fi
number=0
while IFS= read -r entry; do
    number=$((number + 1))
    if ! [[ "$entry" =~ ^[^:]+:\$2[aby]\$[0-9]{2}\$[./A-Za-z0-9]{53}$ ]]; then
        fail "$name: entry $number is not NAME:BCRYPT-HASH as configgen htpasswd writes" \
             "it (a plaintext password or another hash scheme is refused)"
    fi
done <<< "$entries"

# nginx's workers run as nginx: they may read the file, nobody else may.
install -d -m 0750 -o root -g nginx "$folder"
tmp="$(mktemp "$folder/.htpasswd.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
printf '%s\n' "$entries" > "$tmp"
chown root:nginx "$tmp"
chmod 0640 "$tmp"
mv -f "$tmp" "$users_file"
# A new number in the auth cache's key: credentials cached before this change are not used.
printf 'generation %s;\n' "$(date +%s%N)" > "$tmp"
chown root:nginx "$tmp"
chmod 0640 "$tmp"
mv -f "$tmp" "$generation_file"
echo "mlflow users: wrote $number users to $users_file"

# A configuration deployment (a changed secret or property) may not restart nginx: reload it.
if command -v systemctl >/dev/null && systemctl is-active --quiet nginx; then
    systemctl reload nginx || echo "mlflow users: nginx did not reload; the users apply at its next start" >&2
fi
