/* SPDX-License-Identifier: MIT */
#ifndef SM_TLS_H
#define SM_TLS_H

#include <stddef.h>

#include "scalemetrics/error.h"

/* X.509 with OpenSSL: the self-signed serving pair made at start, fingerprints, reading
 * PEM files. The socket's TLS is GnuTLS inside libmicrohttpd (see http/server.c). */

struct sm_tls_pem {
	char *cert_pem; /* NUL-terminated */
	char *key_pem;
	char fingerprint_sha256[96]; /* "AB:CD:..." of the leaf certificate */
};

/* Makes an EC P-256 self-signed certificate valid for 1 year with SANs localhost,
 * 127.0.0.1, ::1 and each name in dns_names (may be NULL/0). */
int sm_tls_make_self_signed(const char *const *dns_names, size_t n_dns_names,
                            struct sm_tls_pem *ret, struct sm_error *reterr) SM_MUSTCHECK;
/* Reads both files, checks that the key matches the certificate. */
int sm_tls_load_files(const char *cert_file, const char *key_file, struct sm_tls_pem *ret,
                      struct sm_error *reterr) SM_MUSTCHECK;
void sm_tls_pem_done(struct sm_tls_pem *p);

#endif
