#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Makes the hostile and extra certificates the security tests need, next to what
# certs/make-certs.sh makes (which it runs first, in the same OUTDIR):
#
#   client-ca.crt, .key               a CA for ordinary client-certificate authentication
#   client-user.crt, .key             CN=alice, O=team-a, O=team-b, clientAuth, signed by client-ca
#   client-expired.crt, .key          CN=alice, clientAuth, signed by client-ca, expired in 2020
#   rogue-ca.crt, .key                a CA nobody trusts
#   rogue-front-proxy.crt, .key       CN=front-proxy-client, clientAuth, signed by rogue-ca
#   rogue-user.crt, .key              CN=alice, O=system:masters, clientAuth, signed by rogue-ca
#   front-proxy-wrong-cn.crt, .key    CN=not-the-aggregator, clientAuth, signed by front-proxy-ca
#   front-proxy-server-eku.crt, .key  CN=front-proxy-client, extKeyUsage serverAuth only,
#                                     signed by front-proxy-ca (not usable as a client cert)
#   front-proxy-expired.crt, .key     CN=front-proxy-client, clientAuth, signed by
#                                     front-proxy-ca, expired in 2020
#
# Usage: certs/make-test-certs.sh OUTDIR   (always remakes these files; fast)
#        certs/make-test-certs.sh OUTDIR --short-lived NAME SECONDS
#            only NAME.crt, .key: CN=front-proxy-client, clientAuth, signed by the
#            front-proxy-ca already in OUTDIR, valid from an hour ago to SECONDS from now
set -euo pipefail

if { [ $# -ne 1 ] && [ $# -ne 4 ]; } || [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ] ||
	{ [ $# -eq 4 ] && [ "$2" != --short-lived ]; }; then
	echo "usage: $0 OUTDIR [--short-lived NAME SECONDS]" >&2
	exit 2
fi
out=$1
here=$(cd "$(dirname "$0")" && pwd)
[ $# -eq 4 ] || bash "$here/make-certs.sh" "$out" >/dev/null
umask 077
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

newkey() {
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null
}

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
}

# make_leaf NAME CA SUBJECT EKU [STARTDATE ENDDATE]
make_leaf() {
	local name=$1 ca=$2 subj=$3 eku=$4 start=${5:-} end=${6:-}
	newkey "$tmp/$name.key"
	openssl req -new -key "$tmp/$name.key" -subj "$subj" -out "$tmp/$name.csr" 2>/dev/null
	if [ -z "$start" ]; then
		printf '%s\n' "basicConstraints=critical,CA:FALSE" \
			"keyUsage=critical,digitalSignature,keyEncipherment" \
			"extendedKeyUsage=$eku" >"$tmp/$name.ext"
		openssl x509 -req -in "$tmp/$name.csr" -CA "$out/$ca.crt" -CAkey "$out/$ca.key" \
			-set_serial "0x$(openssl rand -hex 16)" -sha256 -days 825 \
			-extfile "$tmp/$name.ext" -out "$tmp/$name.crt" 2>/dev/null
	else
		# `openssl ca` is the one that takes explicit validity dates.
		local d="$tmp/ca-$name"
		mkdir -p "$d"
		: >"$d/index.txt"
		openssl rand -hex 16 >"$d/serial"
		cat >"$d/ca.cnf" <<-EOF
			[ca]
			default_ca = x
			[x]
			database = $d/index.txt
			serial = $d/serial
			new_certs_dir = $d
			default_md = sha256
			policy = any
			unique_subject = no
			copy_extensions = none
			[any]
			commonName = supplied
			organizationName = optional
			[ext]
			basicConstraints = critical,CA:FALSE
			keyUsage = critical,digitalSignature,keyEncipherment
			extendedKeyUsage = $eku
		EOF
		openssl ca -batch -config "$d/ca.cnf" -extensions ext -cert "$out/$ca.crt" \
			-keyfile "$out/$ca.key" -in "$tmp/$name.csr" -out "$tmp/$name.crt" \
			-startdate "$start" -enddate "$end" -notext 2>/dev/null
	fi
	install -m 600 "$tmp/$name.key" "$out/$name.key"
	install -m 644 "$tmp/$name.crt" "$out/$name.crt"
}

if [ $# -eq 4 ]; then
	make_leaf "$3" front-proxy-ca "/CN=front-proxy-client" clientAuth \
		"$(date -u -d '-1 hour' +%Y%m%d%H%M%SZ)" "$(date -u -d "+$4 seconds" +%Y%m%d%H%M%SZ)"
	exit 0
fi
make_ca client-ca "scalemetrics-test-client-ca"
make_leaf client-user client-ca "/O=team-a/O=team-b/CN=alice" clientAuth
make_leaf client-expired client-ca "/CN=alice" clientAuth 20200101000000Z 20200201000000Z
make_ca rogue-ca "scalemetrics-rogue-ca"
make_leaf rogue-front-proxy rogue-ca "/CN=front-proxy-client" clientAuth
make_leaf rogue-user rogue-ca "/O=system:masters/CN=alice" clientAuth
make_leaf front-proxy-wrong-cn front-proxy-ca "/CN=not-the-aggregator" clientAuth
make_leaf front-proxy-server-eku front-proxy-ca "/CN=front-proxy-client" serverAuth
make_leaf front-proxy-expired front-proxy-ca "/CN=front-proxy-client" clientAuth \
	20200101000000Z 20200201000000Z
echo "test certificates in $out" >&2
