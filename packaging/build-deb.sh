#!/usr/bin/env bash
# npm run package: builds dist/radioai_VERSION_amd64.deb with dpkg-deb.
#
#   /usr/lib/radioai/lib            radiod and radioctl, compiled to JavaScript
#   /usr/lib/radioai/node_modules   production dependencies only (uWS for linux-x64 / Node 22)
#   /usr/lib/radioai/bin/node       the pinned Node 22 runtime from node_modules
#   /usr/bin/radiod, radioctl       wrappers that run them on it
#   /lib/systemd/system             radiod.service, radiod.path
#   /etc/default/radioai            every setting, commented (a conffile)
#   /usr/lib/sysctl.d               kernel settings from TUNING.md
set -euo pipefail
cd "$(dirname "$0")/.."

arch=$(dpkg --print-architecture)
if [ "$arch" != amd64 ]; then
  echo "package: builds for amd64 (the bundled Node and uWS binaries are x64); this machine is $arch" >&2
  exit 1
fi
[ -x node_modules/.bin/node ] || { echo "package: run ./scripts/setup.sh first (node_modules is missing)" >&2; exit 1; }
node=node_modules/.bin/node
version=$($node -p 'require("./package.json").version')
out=dist
stage=$out/stage
deb=$out/radioai_${version}_amd64.deb
lib=$stage/usr/lib/radioai

rm -rf "$stage" "$out/lib" "$deb"
mkdir -p "$lib/bin" "$stage/usr/bin" "$stage/lib/systemd/system" "$stage/etc/default" \
  "$stage/usr/lib/sysctl.d" "$stage/usr/share/doc/radioai" "$stage/DEBIAN"

# The code: TypeScript compiled to JavaScript, so the package does not depend
# on Node's type stripping.
node_modules/.bin/tsc -p tsconfig.build.json
cp -a "$out/lib" "$lib/lib"
$node -e '
  const p = require("./package.json");
  const keep = { name: p.name, version: p.version, description: p.description, type: p.type, license: p.license, private: true, dependencies: p.dependencies };
  require("fs").writeFileSync(process.argv[1], JSON.stringify(keep, null, 2) + "\n");
' "$lib/package.json"

# Production dependencies, copied from the installed tree (no network).
npm ls --omit=dev --all --parseable 2>/dev/null | sed "s#^$PWD/##" | grep '^node_modules/' | while read -r dir; do
  mkdir -p "$lib/$(dirname "$dir")"
  # -L: local packages (native/udp-batch) are symlinks in node_modules.
  [ -e "$lib/$dir" ] || cp -aL "$dir" "$lib/$dir"
done
# The native addons (batched UDP for DNS, connection peeking for the front door,
# batched sends for hubs, known redirects answered natively, sources carried natively): their compiled
# modules only, not the build trees.
for native in udp-batch:udp_batch conn-peek:conn_peek fan-send:fan_send known-answers:known_answers source-relay:source_relay; do
  pkg=${native%%:*} mod=${native##*:}
  addon=$lib/node_modules/@radioai/$pkg
  if [ -f "$addon/build/Release/$mod.node" ]; then
    find "$addon/build" -mindepth 1 -maxdepth 1 ! -name Release -exec rm -rf {} +
    find "$addon/build/Release" -mindepth 1 ! -name "$mod.node" -exec rm -rf {} +
    rm -f "$addon/$mod.c" "$addon/binding.gyp"
    # Installed as built: no install script to run again on the target.
    $node -e 'const fs = require("fs"), f = process.argv[1], p = JSON.parse(fs.readFileSync(f, "utf8")); delete p.scripts; delete p.gypfile; fs.writeFileSync(f, JSON.stringify(p, null, 2) + "\n");' "$addon/package.json"
  else
    echo "package: native/$pkg is not built; radiod will run without it, more slowly" >&2
  fi
done
# uWS ships binaries for every platform and Node ABI; keep linux-x64 for this Node.
abi=$($node -p process.versions.modules)
find "$lib/node_modules/uWebSockets.js/dist/bin" -name '*.node' ! -name "uws_linux_x64_${abi}.node" -delete
rm -rf "$lib/node_modules/.bin" "$lib/node_modules/.package-lock.json"

cp "$(readlink -f "$node")" "$lib/bin/node"
install -m 0755 scripts/etcd-certs.sh "$lib/bin/etcd-certs.sh"
for cmd in radiod:main.js radioctl:cli/main.js; do
  name=${cmd%%:*} entry=${cmd#*:}
  printf '#!/bin/sh\n# %s: installed by the radioai package; runs on its own Node 22.\nexec /usr/lib/radioai/bin/node /usr/lib/radioai/lib/%s "$@"\n' "$name" "$entry" > "$stage/usr/bin/$name"
  chmod 0755 "$stage/usr/bin/$name"
done

install -m 0644 packaging/systemd/radiod.service packaging/systemd/radiod.path "$stage/lib/systemd/system/"
install -m 0644 packaging/sysctl/60-radioai.conf "$stage/usr/lib/sysctl.d/"
mkdir -p "$stage/etc/logrotate.d"
install -m 0644 packaging/logrotate/radioai "$stage/etc/logrotate.d/radioai"
$node packaging/default-file.ts > "$stage/etc/default/radioai"
chmod 0644 "$stage/etc/default/radioai"
install -m 0644 README.md TUNING.md ARCHITECTURE.md "$stage/usr/share/doc/radioai/"
install -d "$stage/usr/share/doc/radioai/docs"
install -m 0644 docs/*.md "$stage/usr/share/doc/radioai/docs/"
# Manual pages and bash completion, made from the programs' own tables (packaging/manual.ts).
mkdir -p "$stage/usr/share/man/man8" "$stage/usr/share/bash-completion/completions"
for page in radiod radioctl; do
  $node packaging/manual.ts "$page" | gzip -9n > "$stage/usr/share/man/man8/$page.8.gz"
done
$node packaging/manual.ts completion > "$stage/usr/share/bash-completion/completions/radioctl"
chmod 0644 "$stage/usr/share/man/man8/"*.gz "$stage/usr/share/bash-completion/completions/radioctl"
printf 'radioai\nLicense: MIT\nBundles Node.js %s (MIT and others, https://nodejs.org/) and its npm dependencies under their own licenses.\n' "$($node --version)" > "$stage/usr/share/doc/radioai/copyright"

size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@SIZE@/$size/" packaging/debian/control.in > "$stage/DEBIAN/control"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$stage/DEBIAN/"
printf '/etc/default/radioai\n/etc/logrotate.d/radioai\n' > "$stage/DEBIAN/conffiles"

find "$stage" -type d -exec chmod 0755 {} +
dpkg-deb --root-owner-group -Zxz -z6 --build "$stage" "$deb" >/dev/null
rm -rf "$stage"
echo "$deb ($(du -h "$deb" | cut -f1))"
