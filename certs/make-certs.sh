#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Makes the certificates scalemetrics needs for development and tests, with openssl:
#
#   ca.crt, ca.key                     the serving CA (its base64 PEM is the APIService caBundle)
#   tls.crt, tls.key                   serving certificate for scalemetrics.NAMESPACE.svc, signed by ca
#                                      (SANs: scalemetrics, scalemetrics.NAMESPACE,
#                                      scalemetrics.NAMESPACE.svc, scalemetrics.NAMESPACE.svc.cluster.local,
#                                      localhost, 127.0.0.1, ::1)
#   front-proxy-ca.crt, .key           the request-header (front-proxy) CA
#   front-proxy-client.crt, .key       CN=front-proxy-client, extKeyUsage clientAuth, signed by front-proxy-ca
#   client.crt, client.key             CN=scalemetrics-test-user, O=scalemetrics-testers, clientAuth,
#                                      signed by ca (for client-certificate authentication tests)
#
# Usage: certs/make-certs.sh OUTDIR [NAMESPACE]
#
# Idempotent: files that exist, still match their CA and key and are valid for another day are
# kept; anything missing or broken is (re)made, together with whatever depends on it. The last line
# printed is the base64 caBundle (one line), so `CA_BUNDLE=$(certs/make-certs.sh d | tail -n 1)`.
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ] || [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
	echo "usage: $0 OUTDIR [NAMESPACE]" >&2
	exit 2
fi
out=$1
ns=${2:-default}
if ! [[ $ns =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ ]]; then
	echo "$0: invalid namespace: $ns" >&2
	exit 2
fi
command -v openssl >/dev/null || { echo "$0: openssl not found" >&2; exit 1; }

days=825
svc=scalemetrics
mkdir -p "$out"
umask 077
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# valid NAME: NAME.crt and NAME.key exist, the key matches, and it is valid for one more day;
# with a second argument, it must also be signed by that CA.
valid() {
	local name=$1 ca=${2:-}
	[ -s "$out/$name.crt" ] && [ -s "$out/$name.key" ] || return 1
	openssl x509 -in "$out/$name.crt" -noout -checkend 86400 >/dev/null 2>&1 || return 1
	local a b
	a=$(openssl x509 -in "$out/$name.crt" -noout -pubkey 2>/dev/null | openssl sha256) || return 1
	b=$(openssl pkey -in "$out/$name.key" -pubout 2>/dev/null | openssl sha256) || return 1
	[ "$a" = "$b" ] || return 1
	if [ -n "$ca" ]; then
		openssl verify -CAfile "$out/$ca.crt" "$out/$name.crt" >/dev/null 2>&1 || return 1
	fi
	return 0
}

newkey() {
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
}

# make_ca NAME CN
make_ca() {
	local name=$1 cn=$2
	newkey "$tmp/$name.key"
	openssl req -x509 -new -key "$tmp/$name.key" -sha256 -days 3650 -subj "/CN=$cn" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" \
		-addext "subjectKeyIdentifier=hash" \
		-out "$tmp/$name.crt" 2>/dev/null
	install -m 600 "$tmp/$name.key" "$out/$name.key"
	install -m 644 "$tmp/$name.crt" "$out/$name.crt"
	echo "made $out/$name.crt ($cn)" >&2
}

# make_leaf NAME CA SUBJECT EXTFILE-CONTENT
make_leaf() {
	local name=$1 ca=$2 subj=$3 ext=$4
	newkey "$tmp/$name.key"
	openssl req -new -key "$tmp/$name.key" -subj "$subj" -out "$tmp/$name.csr" 2>/dev/null
	printf '%s\n' "$ext" >"$tmp/$name.ext"
	openssl x509 -req -in "$tmp/$name.csr" -CA "$out/$ca.crt" -CAkey "$out/$ca.key" \
		-set_serial "0x$(openssl rand -hex 16)" -sha256 -days "$days" \
		-extfile "$tmp/$name.ext" -out "$tmp/$name.crt" 2>/dev/null
	install -m 600 "$tmp/$name.key" "$out/$name.key"
	install -m 644 "$tmp/$name.crt" "$out/$name.crt"
	echo "made $out/$name.crt ($subj)" >&2
}

sans="DNS:$svc,DNS:$svc.$ns,DNS:$svc.$ns.svc,DNS:$svc.$ns.svc.cluster.local,DNS:localhost,IP:127.0.0.1,IP:::1"
serving_ext="basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=$sans"
client_ext="basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"

# The serving pair must also carry this namespace's names (a rerun with another namespace
# makes a new one).
serving_ok() {
	valid tls ca || return 1
	openssl x509 -in "$out/tls.crt" -noout -ext subjectAltName 2>/dev/null |
		grep -q "DNS:$svc.$ns.svc.cluster.local"
}

fresh_ca=0
if ! valid ca; then
	make_ca ca "scalemetrics-ca"
	fresh_ca=1
fi
if [ $fresh_ca = 1 ] || ! serving_ok; then
	make_leaf tls ca "/CN=$svc.$ns.svc" "$serving_ext"
fi
if [ $fresh_ca = 1 ] || ! valid client ca; then
	make_leaf client ca "/O=scalemetrics-testers/CN=scalemetrics-test-user" "$client_ext"
fi

fresh_fp=0
if ! valid front-proxy-ca; then
	make_ca front-proxy-ca "scalemetrics-front-proxy-ca"
	fresh_fp=1
fi
if [ $fresh_fp = 1 ] || ! valid front-proxy-client front-proxy-ca; then
	make_leaf front-proxy-client front-proxy-ca "/CN=front-proxy-client" "$client_ext"
fi

echo "certificates in $out (serving name $svc.$ns.svc); caBundle:" >&2
base64 -w0 <"$out/ca.crt"
echo
