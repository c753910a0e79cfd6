#!/usr/bin/env bash
# Installs the peers the benchmarks measure radioai against (nginx, NSD,
# dnsperf) and the bench package's npm dependencies, idempotently. The
# peers' own services are kept from starting: on a radioai node nginx and
# NSD would take ports 80 and 53, and the benchmarks run private instances.
set -euo pipefail
cd "$(dirname "$0")"

PACKAGES=(nginx-light nsd dnsperf)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]} > 0)); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "bench: missing Debian packages: ${missing[*]}; run npm run bench as root once to install them" >&2
    exit 1
  fi
  echo "bench: installing ${missing[*]} (their services stay stopped)"
  # policy-rc.d exit 101 tells invoke-rc.d not to start services during the install.
  policy=/usr/sbin/policy-rc.d
  had_policy=0
  [ -e "$policy" ] && had_policy=1
  if [ "$had_policy" -eq 0 ]; then printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy"; fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ "$had_policy" -eq 0 ]; then rm -f "$policy"; fi
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    systemctl disable --now nginx nsd >/dev/null 2>&1 || true
  fi
fi

if [ ! -f node_modules/.radioai-lock ] || ! sha256sum -c --status node_modules/.radioai-lock 2>/dev/null; then
  npm ci --no-audit --no-fund
  sha256sum package-lock.json > node_modules/.radioai-lock
fi
