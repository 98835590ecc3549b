/* SPDX-License-Identifier: MIT */
/* X.509 with OpenSSL: the self-signed serving pair made at start, reading and checking the
 * certificate and key files, SHA-256 fingerprints. No sockets here: the TLS on the wire is
 * GnuTLS inside libmicrohttpd (see server-tls.c). */
#include "scalemetrics/tls.h"

#include <errno.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "scalemetrics/file.h"

/* Certificate and key files are small; anything bigger is not what we think it is. */
#define PEM_FILE_MAX     (1024 * 1024)
#define SELF_SIGNED_DAYS 365
/* notBefore a little in the past, for clients whose clock runs slightly behind. */
#define SELF_SIGNED_BACKDATE_S 300

/* The most specific OpenSSL error on this thread's queue, then clears the queue. */
static const char *openssl_reason(char *buf, size_t len)
{
	unsigned long e = ERR_peek_last_error();

	if (e == 0)
		(void)snprintf(buf, len, "unknown error");
	else
		ERR_error_string_n(e, buf, len);
	ERR_clear_error();
	return buf;
}

/* Reads a whole PEM file (a regular file of at most PEM_FILE_MAX bytes, text). */
static int read_file(const char *path, const char *what, char **ret, size_t *ret_len,
                     struct sm_error *reterr)
{
	struct sm_error e = {0};
	char *buf = NULL;
	size_t n = 0;
	int r;

	r = sm_file_read(path, PEM_FILE_MAX, SM_FILE_REGULAR | SM_FILE_SECRET, &buf, &n, &e);
	if (r < 0) {
		sm_error_set(reterr, "%s file '%s': %s", what, path, e.message);
		return r;
	}
	if (n == 0) {
		r = -EINVAL;
		sm_error_set(reterr, "%s file '%s' is empty", what, path);
		goto out;
	}
	if (strlen(buf) != n) {
		r = -EINVAL;
		sm_error_set(reterr, "%s file '%s' is not PEM text (it contains NUL bytes)", what,
		             path);
		goto out;
	}
	*ret = buf;
	*ret_len = n;
	buf = NULL;
out:
	if (buf) /* may hold key material */
		OPENSSL_cleanse(buf, n);
	free(buf);
	return r;
}

static void fingerprint(X509 *x, char out[static 96])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	out[0] = '\0';
	if (!X509_digest(x, EVP_sha256(), md, &n) || n != 32)
		return;
	for (unsigned int i = 0; i < n; i++) {
		out[o++] = hex[md[i] >> 4];
		out[o++] = hex[md[i] & 0xf];
		out[o++] = i + 1 < n ? ':' : '\0';
	}
}

/* Never prompts: an encrypted key is an error, not a terminal read. */
static int no_password(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

static char *bio_to_string(BIO *b)
{
	char *data = NULL;
	long len = BIO_get_mem_data(b, &data);
	char *s;

	if (len <= 0 || !data)
		return NULL;
	s = malloc((size_t)len + 1);
	if (!s)
		return NULL;
	memcpy(s, data, (size_t)len);
	s[len] = '\0';
	return s;
}

static int add_san(GENERAL_NAMES *sans, const char *name)
{
	GENERAL_NAME *gn = NULL;
	ASN1_OCTET_STRING *ip = NULL;
	ASN1_IA5STRING *dns = NULL;
	int r = -ENOMEM;

	gn = GENERAL_NAME_new();
	if (!gn)
		goto out;
	ip = a2i_IPADDRESS(name);
	if (ip) {
		GENERAL_NAME_set0_value(gn, GEN_IPADD, ip);
		ip = NULL;
	} else {
		ERR_clear_error();
		dns = ASN1_IA5STRING_new();
		if (!dns || !ASN1_STRING_set(dns, name, (int)strlen(name)))
			goto out;
		GENERAL_NAME_set0_value(gn, GEN_DNS, dns);
		dns = NULL;
	}
	if (!sk_GENERAL_NAME_push(sans, gn))
		goto out;
	gn = NULL;
	r = 0;
out:
	ASN1_OCTET_STRING_free(ip);
	ASN1_IA5STRING_free(dns);
	GENERAL_NAME_free(gn);
	return r;
}

static bool add_ext_conf(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
	bool ok;

	if (!ext)
		return false;
	ok = X509_add_ext(x, ext, -1) == 1;
	X509_EXTENSION_free(ext);
	return ok;
}

/* A positive random 127-bit serial number (RFC 5280: at most 20 octets, positive). */
static bool set_random_serial(X509 *x)
{
	unsigned char raw[16];
	BIGNUM *bn = NULL;
	bool ok = false;

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		goto out;
	raw[0] &= 0x7f;
	raw[0] |= 0x01; /* never zero, never a leading zero octet */
	bn = BN_bin2bn(raw, sizeof(raw), NULL);
	if (!bn)
		goto out;
	ok = BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
out:
	BN_free(bn);
	return ok;
}

int sm_tls_make_self_signed(const char *const *dns_names, size_t n_dns_names,
                            struct sm_tls_pem *ret, struct sm_error *reterr)
{
	static const char *const default_names[] = {"localhost", "127.0.0.1", "::1"};
	EVP_PKEY *pkey = NULL;
	X509 *x = NULL;
	X509_NAME *name = NULL;
	GENERAL_NAMES *sans = NULL;
	BIO *cbio = NULL, *kbio = NULL;
	struct sm_tls_pem pem = {0};
	X509V3_CTX ctx;
	char ebuf[256];
	int r = -ENOMEM;

	for (size_t i = 0; i < n_dns_names; i++)
		if (!dns_names[i] || dns_names[i][0] == '\0') {
			r = -EINVAL;
			sm_error_set(reterr,
			             "self-signed certificate: empty subject alternative name");
			goto out;
		}

	pkey = EVP_EC_gen("P-256");
	if (!pkey) {
		r = -EIO;
		sm_error_set(reterr, "cannot generate an EC P-256 key: %s",
		             openssl_reason(ebuf, sizeof(ebuf)));
		goto out;
	}
	x = X509_new();
	if (!x)
		goto fail_openssl;
	if (!X509_set_version(x, X509_VERSION_3) || !set_random_serial(x))
		goto fail_openssl;
	if (!X509_gmtime_adj(X509_getm_notBefore(x), -SELF_SIGNED_BACKDATE_S) ||
	    !X509_time_adj_ex(X509_getm_notAfter(x), SELF_SIGNED_DAYS, 0, NULL))
		goto fail_openssl;
	name = X509_get_subject_name(x);
	if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
	                                (const unsigned char *)"scalemetrics", -1, -1, 0))
		goto fail_openssl;
	if (!X509_set_issuer_name(x, name) || !X509_set_pubkey(x, pkey))
		goto fail_openssl;

	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	if (!add_ext_conf(x, &ctx, NID_basic_constraints, "critical,CA:FALSE") ||
	    !add_ext_conf(x, &ctx, NID_key_usage, "critical,digitalSignature") ||
	    !add_ext_conf(x, &ctx, NID_ext_key_usage, "serverAuth") ||
	    !add_ext_conf(x, &ctx, NID_subject_key_identifier, "hash"))
		goto fail_openssl;

	sans = GENERAL_NAMES_new();
	if (!sans)
		goto fail_openssl;
	for (size_t i = 0; i < sizeof(default_names) / sizeof(default_names[0]); i++)
		if (add_san(sans, default_names[i]) < 0)
			goto fail_openssl;
	for (size_t i = 0; i < n_dns_names; i++)
		if (add_san(sans, dns_names[i]) < 0)
			goto fail_openssl;
	if (!X509_add1_ext_i2d(x, NID_subject_alt_name, sans, 0, X509V3_ADD_DEFAULT))
		goto fail_openssl;

	if (!X509_sign(x, pkey, EVP_sha256()))
		goto fail_openssl;

	cbio = BIO_new(BIO_s_mem());
	kbio = BIO_new(BIO_s_mem());
	if (!cbio || !kbio || !PEM_write_bio_X509(cbio, x) ||
	    !PEM_write_bio_PrivateKey(kbio, pkey, NULL, NULL, 0, NULL, NULL))
		goto fail_openssl;
	pem.cert_pem = bio_to_string(cbio);
	pem.key_pem = bio_to_string(kbio);
	if (!pem.cert_pem || !pem.key_pem) {
		sm_error_set(reterr, "out of memory making the self-signed certificate");
		goto out;
	}
	fingerprint(x, pem.fingerprint_sha256);
	*ret = pem;
	pem = (struct sm_tls_pem){0};
	r = 0;
	goto out;

fail_openssl:
	r = -EIO;
	sm_error_set(reterr, "cannot make the self-signed certificate: %s",
	             openssl_reason(ebuf, sizeof(ebuf)));
out:
	sm_tls_pem_done(&pem);
	BIO_free(cbio); /* a memory BIO clears its buffer when freed */
	BIO_free(kbio);
	GENERAL_NAMES_free(sans);
	X509_free(x);
	EVP_PKEY_free(pkey);
	return r;
}

int sm_tls_load_files(const char *cert_file, const char *key_file, struct sm_tls_pem *ret,
                      struct sm_error *reterr)
{
	struct sm_tls_pem pem = {0};
	size_t cert_len = 0, key_len = 0;
	BIO *b = NULL;
	X509 *x = NULL;
	EVP_PKEY *pkey = NULL;
	char ebuf[256];
	int r;

	r = read_file(cert_file, "certificate", &pem.cert_pem, &cert_len, reterr);
	if (r < 0)
		goto out;
	r = read_file(key_file, "key", &pem.key_pem, &key_len, reterr);
	if (r < 0)
		goto out;

	/* The first certificate in the file is the leaf; the rest (if any) is its chain. */
	b = BIO_new_mem_buf(pem.cert_pem, (int)cert_len);
	if (!b) {
		r = -ENOMEM;
		goto out;
	}
	x = PEM_read_bio_X509(b, NULL, no_password, NULL);
	if (!x) {
		r = -EINVAL;
		sm_error_set(reterr, "certificate file '%s' holds no PEM certificate: %s",
		             cert_file, openssl_reason(ebuf, sizeof(ebuf)));
		goto out;
	}
	BIO_free(b);
	b = BIO_new_mem_buf(pem.key_pem, (int)key_len);
	if (!b) {
		r = -ENOMEM;
		goto out;
	}
	pkey = PEM_read_bio_PrivateKey(b, NULL, no_password, NULL);
	if (!pkey) {
		r = -EINVAL;
		sm_error_set(reterr, "key file '%s' holds no unencrypted PEM private key: %s",
		             key_file, openssl_reason(ebuf, sizeof(ebuf)));
		goto out;
	}
	if (X509_check_private_key(x, pkey) != 1) {
		ERR_clear_error();
		r = -EINVAL;
		sm_error_set(reterr, "key file '%s' does not match certificate file '%s'", key_file,
		             cert_file);
		goto out;
	}
	fingerprint(x, pem.fingerprint_sha256);
	*ret = pem;
	pem = (struct sm_tls_pem){0};
	r = 0;
out:
	if (r == -ENOMEM)
		sm_error_set(reterr, "out of memory reading '%s'", cert_file);
	EVP_PKEY_free(pkey);
	X509_free(x);
	BIO_free(b);
	sm_tls_pem_done(&pem);
	return r;
}

void sm_tls_pem_done(struct sm_tls_pem *p)
{
	if (!p)
		return;
	free(p->cert_pem);
	if (p->key_pem) {
		OPENSSL_cleanse(p->key_pem, strlen(p->key_pem));
		free(p->key_pem);
	}
	*p = (struct sm_tls_pem){0};
}
