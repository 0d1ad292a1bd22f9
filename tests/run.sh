#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine with Python 3.11+: installs what the
# tests drive (nginx, Apache's htpasswd, MariaDB, PostgreSQL, Chromium, a Docker engine with
# Debian's docker-compose, debootstrap, wrk, unzip, testssl.sh) when missing, makes .venv with the
# package and its test dependencies (MLflow, moto, Playwright, compose v2), then runs ruff,
# the drift check and pytest. The compose tests start dockerd themselves if no engine runs.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

export PATH="$PATH:/usr/sbin:/sbin"  # nginx lives in /usr/sbin
missing=()
command -v nginx >/dev/null || missing+=(nginx)
command -v htpasswd >/dev/null || missing+=(apache2-utils)
command -v mariadbd >/dev/null || missing+=(mariadb-server)
[ -d /usr/lib/postgresql ] || missing+=(postgresql)  # initdb, postgres: not on PATH
command -v chromium >/dev/null || missing+=(chromium)
command -v dockerd >/dev/null || missing+=(docker.io)
[ -x /usr/bin/docker-compose ] || missing+=(docker-compose)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v wrk >/dev/null || missing+=(wrk)
command -v unzip >/dev/null || missing+=(unzip)
command -v testssl >/dev/null || missing+=(testssl.sh)
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "tests/run.sh: installing ${missing[*]}"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  if [[ " ${missing[*]} " == *" postgresql "* ]]; then
    # The tests start PostgreSQL servers of their own (tests/servers.py): Debian's package is
    # told not to make (and start) its `main` cluster, as the official postgres image does.
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      postgresql-common >/dev/null
    $sudo sed -Ei 's/^#? *create_main_cluster *=.*/create_main_cluster = false/' \
      /etc/postgresql-common/createcluster.conf
  fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

python3 -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check --editable '.[test]'
export PATH="$PWD/.venv/bin:$PATH"

ruff check .
configgen render --check
pytest "$@"
