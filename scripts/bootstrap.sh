#!/usr/bin/env bash
# Installs what Flotilla needs on a Debian machine, as root, only what is missing:
# Debian packages (apt) and the project with its test extras in .venv (pip).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(etcd-server iptables iproute2 busybox-static python3-venv docker.io docker-registry conntrack)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "bootstrap: apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || true
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "bootstrap: creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.flotilla-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "bootstrap: pip install -e .[test]"
  .venv/bin/pip install -q -e '.[test]'
  touch "$stamp"
fi
