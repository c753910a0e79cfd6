#!/usr/bin/env bash
# Installs what radioai needs on Debian 12, idempotently: the Debian packages
# it runs (etcd, Icecast, liquidsoap) and tests and packages with (ffmpeg, dig,
# openssl, systemd-analyze, the Icecast client programs), then the
# npm dependencies, which include the pinned Node 22 runtime.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(etcd-server etcd-client icecast2 liquidsoap ffmpeg dnsutils procps iproute2 curl python3 openssl systemd adduser g++ make)
# The Icecast clients the tests run against both public ports (harness/clients.ts):
# source programs, players, a recorder and a headless browser; a Prometheus server that scrapes /metrics;
# groff and bash for the manual pages and the completion the package installs.
PACKAGES+=(ezstream ices2 mpv vlc-bin vlc-plugin-base mplayer mpg123 vorbis-tools streamripper chromium-headless-shell prometheus groff-base)
# Node-API headers for native/udp-batch; Debian's libnode-dev has them when Node's own package does not.
[ -f /usr/include/node/node_api.h ] || PACKAGES+=(libnode-dev)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]} > 0)); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages: ${missing[*]}; run this script as root to install them" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The unprivileged user radiod runs Icecast, liquidsoap and the embedded etcd as when it
# is root, as the Debian package creates it (else they run as nobody).
if [ "$(id -u)" -eq 0 ] && ! id radioai >/dev/null 2>&1; then
  adduser --quiet --system --group --home /var/lib/radioai --no-create-home radioai
fi

# When a worker thread closes its listen socket (restart, shutdown), let the
# kernel hand connections still waiting in its accept queue to the other
# workers' sockets on the same port instead of resetting them (Linux >= 5.14).
if [ "$(id -u)" -eq 0 ] && [ -w /proc/sys/net/ipv4/tcp_migrate_req ]; then
  echo 1 > /proc/sys/net/ipv4/tcp_migrate_req
fi
# Bound what the kernel queues for a listener that stops reading (128 KiB not yet sent):
# beyond it the socket is not writable, the hub sees the backlog and drops the listener
# after ICECAST_QUEUE_SIZE, instead of the kernel quietly buffering up to tcp_wmem's 4 MiB.
if [ "$(id -u)" -eq 0 ] && [ -w /proc/sys/net/ipv4/tcp_notsent_lowat ]; then
  echo 131072 > /proc/sys/net/ipv4/tcp_notsent_lowat
fi

if ! command -v npm >/dev/null; then
  echo "setup: npm is needed (Debian: apt-get install npm)" >&2
  exit 1
fi
# Reinstall only when the lock file or the native addon's source changed since the last install.
lock_sum=$(cat package-lock.json native/*/*.c native/*/binding.gyp | sha256sum | cut -d' ' -f1)
if [ ! -x node_modules/.bin/node ] || [ "$(cat node_modules/.radioai-lock 2>/dev/null)" != "$lock_sum" ]; then
  npm ci --no-audit --no-fund
  echo "$lock_sum" > node_modules/.radioai-lock
fi
# npm ci builds native/udp-batch (batched UDP for the DNS server) with node-gyp against
# the system's Node headers; without it radiod answers DNS through node:dgram, more slowly.
if [ ! -f native/udp-batch/build/Release/udp_batch.node ]; then
  echo "setup: native/udp-batch was not built (needs g++, make, python3 and Node headers); DNS will use node:dgram" >&2
fi
# Likewise native/conn-peek, with which the front door hands short HTTP/1.1 requests to uWebSockets.js;
# without it the front door serves every request itself.
if [ ! -f native/conn-peek/build/Release/conn_peek.node ]; then
  echo "setup: native/conn-peek was not built; the front door will serve every request without uWebSockets.js" >&2
fi
# And native/fan-send, with which a hub sends each piece of a stream to its listeners' sockets in one call;
# without it every write goes through Node's streams, at more CPU per listener.
if [ ! -f native/fan-send/build/Release/fan_send.node ]; then
  echo "setup: native/fan-send was not built; hubs will write to each listener through Node's streams" >&2
fi
# And native/known-answers, which answers a redirect already decided without entering JavaScript;
# without it uWebSockets.js answers every short request.
if [ ! -f native/known-answers/build/Release/known_answers.node ]; then
  echo "setup: native/known-answers was not built; every redirect will go through uWebSockets.js" >&2
fi
# And native/source-relay, which carries a source's bytes to the master's Icecast without waking JavaScript;
# without it each piece a source program sends goes through Node's streams.
if [ ! -f native/source-relay/build/Release/source_relay.node ]; then
  echo "setup: native/source-relay was not built; sources will be carried through Node's streams" >&2
fi
node_modules/.bin/node -e 'const [maj] = process.versions.node.split("."); if (+maj < 22) { console.error("setup: Node " + process.version + " is too old"); process.exit(1); }'
echo "setup: ready (node $(node_modules/.bin/node --version))"
