#!/usr/bin/env bash
# Makes the certificates for an etcd cluster with X.509 client authentication
# (docs/cluster.md, "Installing a cluster"). Run it on one machine and copy the files out:
#
#   etcd-certs.sh DIR ca                      DIR/etcd_ca.pem and DIR/etcd_ca.key (kept once made)
#   etcd-certs.sh DIR member NAME IP[,IP...]  DIR/NAME.pem and DIR/NAME.key: an etcd member's
#                                             certificate for its client and peer ports
#   etcd-certs.sh DIR client                  DIR/etcd_client.pem and DIR/etcd_client.key for
#                                             radiod and radioctl (/etc/radioai/ on every node)
#
# Keys are EC P-256; certificates last ten years. DIR/etcd_ca.key signs
# everything: keep it off the nodes.
set -euo pipefail

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 1; }
[ $# -ge 2 ] || usage
dir=$1 what=$2
mkdir -p "$dir"
umask 077
days=3650

sign() { # NAME SUBJECT EXTENSIONS
  local name=$1 subject=$2 ext=$3
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$dir/$name.key" -out "$dir/$name.csr" -subj "$subject" 2>/dev/null
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/etcd_ca.pem" -CAkey "$dir/etcd_ca.key" \
    -CAcreateserial -days "$days" -out "$dir/$name.pem" -extfile <(printf '%s\n' "$ext") 2>/dev/null
  rm -f "$dir/$name.csr"
  chmod 0644 "$dir/$name.pem"
  echo "$dir/$name.pem $dir/$name.key"
}

need_ca() {
  [ -s "$dir/etcd_ca.pem" ] && [ -s "$dir/etcd_ca.key" ] || { echo "etcd-certs: no CA in $dir; run: $0 $dir ca" >&2; exit 1; }
}

case $what in
  ca)
    if [ -s "$dir/etcd_ca.pem" ]; then echo "$dir/etcd_ca.pem (kept)"; exit 0; fi
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
      -keyout "$dir/etcd_ca.key" -out "$dir/etcd_ca.pem" -days "$days" -subj "/CN=radioai etcd CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    chmod 0644 "$dir/etcd_ca.pem"
    echo "$dir/etcd_ca.pem"
    ;;
  member)
    [ $# -eq 4 ] || usage
    need_ca
    name=$3
    san=$(printf '%s' "$4" | tr ',' '\n' | sed '/^$/d; s/^/IP:/' | paste -sd, -)
    sign "$name" "/CN=$name" "subjectAltName=$san,DNS:$name
extendedKeyUsage=serverAuth,clientAuth"
    ;;
  client)
    need_ca
    sign etcd_client "/CN=radioai" "extendedKeyUsage=clientAuth"
    ;;
  *) usage ;;
esac
