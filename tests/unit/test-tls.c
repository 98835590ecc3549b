/* SPDX-License-Identifier: MIT */
/* Unit tests for src/http/tls.c: the self-signed pair, loading and matching files,
 * fingerprints. */
#include <errno.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "scalemetrics/error.h"
#include "scalemetrics/tls.h"

struct tmpdir {
	char path[64];
};

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static X509 *parse_cert(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x;

	assert_non_null(b);
	x = PEM_read_bio_X509(b, NULL, NULL, NULL);
	BIO_free(b);
	assert_non_null(x);
	return x;
}

static EVP_PKEY *parse_key(const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	EVP_PKEY *k;

	assert_non_null(b);
	k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
	BIO_free(b);
	assert_non_null(k);
	return k;
}

static void expect_fingerprint_format(const char *fp)
{
	assert_int_equal(strlen(fp), 95);
	for (size_t i = 0; i < 95; i++) {
		if (i % 3 == 2)
			assert_int_equal(fp[i], ':');
		else
			assert_non_null(strchr("0123456789ABCDEF", fp[i]));
	}
}

static bool has_san(GENERAL_NAMES *sans, int type, const char *text)
{
	for (int i = 0; i < sk_GENERAL_NAME_num(sans); i++) {
		GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, i);
		int t;
		ASN1_STRING *v = GENERAL_NAME_get0_value(gn, &t);

		if (t != type)
			continue;
		if (type == GEN_DNS && (size_t)ASN1_STRING_length(v) == strlen(text) &&
		    memcmp(ASN1_STRING_get0_data(v), text, strlen(text)) == 0)
			return true;
		if (type == GEN_IPADD) {
			ASN1_OCTET_STRING *want = a2i_IPADDRESS(text);
			bool eq = want && ASN1_STRING_cmp(want, v) == 0;

			ASN1_OCTET_STRING_free(want);
			if (eq)
				return true;
		}
	}
	return false;
}

static void test_self_signed(void **state)
{
	const char *names[] = {"scalemetrics.monitoring.svc", "10.1.2.3"};
	struct sm_tls_pem pem = {0};
	struct sm_error err = {0};
	X509 *x;
	EVP_PKEY *k;
	GENERAL_NAMES *sans;
	BASIC_CONSTRAINTS *bc;
	X509_NAME *subj;
	char cn[64];
	int day, sec;

	(void)state;
	assert_int_equal(sm_tls_make_self_signed(names, 2, &pem, &err), 0);
	assert_non_null(pem.cert_pem);
	assert_non_null(pem.key_pem);
	expect_fingerprint_format(pem.fingerprint_sha256);

	x = parse_cert(pem.cert_pem);
	k = parse_key(pem.key_pem);
	assert_int_equal(X509_check_private_key(x, k), 1);
	assert_int_equal(EVP_PKEY_get_base_id(k), EVP_PKEY_EC);
	assert_int_equal(EVP_PKEY_get_bits(k), 256);
	assert_int_equal(X509_get_version(x), X509_VERSION_3);

	subj = X509_get_subject_name(x);
	assert_true(X509_NAME_get_text_by_NID(subj, NID_commonName, cn, sizeof(cn)) > 0);
	assert_string_equal(cn, "scalemetrics");
	assert_int_equal(X509_NAME_cmp(subj, X509_get_issuer_name(x)), 0);

	sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	assert_non_null(sans);
	assert_true(has_san(sans, GEN_DNS, "localhost"));
	assert_true(has_san(sans, GEN_IPADD, "127.0.0.1"));
	assert_true(has_san(sans, GEN_IPADD, "::1"));
	assert_true(has_san(sans, GEN_DNS, "scalemetrics.monitoring.svc"));
	assert_true(has_san(sans, GEN_IPADD, "10.1.2.3"));
	assert_false(has_san(sans, GEN_DNS, "10.1.2.3"));
	GENERAL_NAMES_free(sans);

	bc = X509_get_ext_d2i(x, NID_basic_constraints, NULL, NULL);
	assert_non_null(bc);
	assert_false(bc->ca);
	BASIC_CONSTRAINTS_free(bc);
	assert_true(X509_get_key_usage(x) & KU_DIGITAL_SIGNATURE);
	assert_false(X509_get_key_usage(x) & KU_KEY_CERT_SIGN);
	assert_int_equal(X509_get_extended_key_usage(x), XKU_SSL_SERVER);

	/* valid now, for about a year */
	assert_true(X509_cmp_current_time(X509_get0_notBefore(x)) < 0);
	assert_int_equal(ASN1_TIME_diff(&day, &sec, NULL, X509_get0_notAfter(x)), 1);
	assert_true(day >= 364 && day <= 365);

	X509_free(x);
	EVP_PKEY_free(k);
	sm_tls_pem_done(&pem);
	assert_null(pem.cert_pem);
	assert_null(pem.key_pem);
}

static void test_self_signed_twice_differs(void **state)
{
	struct sm_tls_pem a = {0}, b = {0};

	(void)state;
	assert_int_equal(sm_tls_make_self_signed(NULL, 0, &a, NULL), 0);
	assert_int_equal(sm_tls_make_self_signed(NULL, 0, &b, NULL), 0);
	assert_string_not_equal(a.fingerprint_sha256, b.fingerprint_sha256);
	assert_string_not_equal(a.key_pem, b.key_pem);
	sm_tls_pem_done(&a);
	sm_tls_pem_done(&b);
}

static void test_self_signed_bad_name(void **state)
{
	const char *names[] = {""};
	struct sm_tls_pem pem = {.cert_pem = (char *)"untouched"};
	struct sm_error err = {0};

	(void)state;
	assert_int_equal(sm_tls_make_self_signed(names, 1, &pem, &err), -EINVAL);
	assert_string_equal(pem.cert_pem, "untouched");
	assert_non_null(strstr(err.message, "empty"));
}

static int setup_dir(void **state)
{
	struct tmpdir *d = calloc(1, sizeof(*d));

	if (!d)
		return -1;
	(void)snprintf(d->path, sizeof(d->path), "/tmp/sm-test-tls-XXXXXX");
	if (!mkdtemp(d->path)) {
		free(d);
		return -1;
	}
	*state = d;
	return 0;
}

static int teardown_dir(void **state)
{
	struct tmpdir *d = *state;
	const char *files[] = {"a.crt",   "a.key",   "b.crt",    "b.key",
	                       "bad.crt", "enc.key", "chain.crt"};
	char p[128];

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		(void)snprintf(p, sizeof(p), "%s/%s", d->path, files[i]);
		(void)unlink(p);
	}
	(void)rmdir(d->path);
	free(d);
	return 0;
}

static void path_in(const struct tmpdir *d, const char *name, char *buf, size_t len)
{
	(void)snprintf(buf, len, "%s/%s", d->path, name);
}

static void test_load_files(void **state)
{
	struct tmpdir *d = *state;
	struct sm_tls_pem a = {0}, b = {0}, loaded = {0};
	struct sm_tls_pem untouched = {.cert_pem = (char *)"untouched"};
	struct sm_error err = {0};
	char acrt[128], akey[128], bkey[128], bad[128], enc[128], chain[128], missing[128];
	char *chain_text;
	EVP_PKEY *k;
	BIO *bio;
	char *data = NULL;
	long n;

	assert_int_equal(sm_tls_make_self_signed(NULL, 0, &a, NULL), 0);
	assert_int_equal(sm_tls_make_self_signed(NULL, 0, &b, NULL), 0);
	path_in(d, "a.crt", acrt, sizeof(acrt));
	path_in(d, "a.key", akey, sizeof(akey));
	path_in(d, "b.key", bkey, sizeof(bkey));
	path_in(d, "bad.crt", bad, sizeof(bad));
	path_in(d, "enc.key", enc, sizeof(enc));
	path_in(d, "chain.crt", chain, sizeof(chain));
	path_in(d, "missing.crt", missing, sizeof(missing));
	write_file(acrt, a.cert_pem);
	write_file(akey, a.key_pem);
	write_file(bkey, b.key_pem);
	write_file(bad, "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n");

	/* the good pair */
	assert_int_equal(sm_tls_load_files(acrt, akey, &loaded, &err), 0);
	assert_string_equal(loaded.fingerprint_sha256, a.fingerprint_sha256);
	assert_string_equal(loaded.cert_pem, a.cert_pem);
	assert_string_equal(loaded.key_pem, a.key_pem);
	sm_tls_pem_done(&loaded);

	/* a chain: the leaf is first, its fingerprint is the one reported */
	chain_text = malloc(strlen(a.cert_pem) + strlen(b.cert_pem) + 1);
	assert_non_null(chain_text);
	memcpy(chain_text, a.cert_pem, strlen(a.cert_pem));
	memcpy(chain_text + strlen(a.cert_pem), b.cert_pem, strlen(b.cert_pem) + 1);
	write_file(chain, chain_text);
	free(chain_text);
	assert_int_equal(sm_tls_load_files(chain, akey, &loaded, &err), 0);
	assert_string_equal(loaded.fingerprint_sha256, a.fingerprint_sha256);
	sm_tls_pem_done(&loaded);

	/* key of another certificate */
	assert_int_equal(sm_tls_load_files(acrt, bkey, &untouched, &err), -EINVAL);
	assert_string_equal(untouched.cert_pem, "untouched");
	assert_non_null(strstr(err.message, "does not match"));
	assert_non_null(strstr(err.message, bkey));
	assert_non_null(strstr(err.message, acrt));

	/* missing file */
	assert_int_equal(sm_tls_load_files(missing, akey, &untouched, &err), -ENOENT);
	assert_string_equal(untouched.cert_pem, "untouched");
	assert_non_null(strstr(err.message, missing));

	/* not a certificate */
	assert_int_equal(sm_tls_load_files(bad, akey, &untouched, &err), -EINVAL);
	assert_non_null(strstr(err.message, bad));
	/* certificate where the key belongs */
	assert_int_equal(sm_tls_load_files(acrt, acrt, &untouched, &err), -EINVAL);
	assert_non_null(strstr(err.message, acrt));
	assert_non_null(strstr(err.message, "private key"));
	/* a directory */
	assert_int_equal(sm_tls_load_files(d->path, akey, &untouched, &err), -EINVAL);
	assert_non_null(strstr(err.message, "regular file"));

	/* an encrypted key is refused, without prompting for a password */
	k = parse_key(a.key_pem);
	bio = BIO_new(BIO_s_mem());
	assert_non_null(bio);
	assert_int_equal(
	    PEM_write_bio_PKCS8PrivateKey(bio, k, EVP_aes_128_cbc(), "pw", 2, NULL, NULL), 1);
	n = BIO_get_mem_data(bio, &data);
	assert_true(n > 0);
	{
		char *text = calloc(1, (size_t)n + 1);

		assert_non_null(text);
		memcpy(text, data, (size_t)n);
		write_file(enc, text);
		free(text);
	}
	BIO_free(bio);
	EVP_PKEY_free(k);
	assert_int_equal(sm_tls_load_files(acrt, enc, &untouched, &err), -EINVAL);
	assert_non_null(strstr(err.message, enc));
	assert_string_equal(untouched.cert_pem, "untouched");

	sm_tls_pem_done(&a);
	sm_tls_pem_done(&b);
}

/* done accepts NULL and an empty pair, and leaves a filled one empty (both strings freed
 * and NULL, no fingerprint), so that a second done, as on every error path, frees nothing
 * twice. */
static void test_pem_done_null(void **state)
{
	struct sm_tls_pem empty = {0};
	struct sm_tls_pem pem = {0};

	(void)state;
	sm_tls_pem_done(NULL);
	sm_tls_pem_done(&empty);
	assert_null(empty.cert_pem);
	assert_null(empty.key_pem);

	assert_int_equal(sm_tls_make_self_signed(NULL, 0, &pem, NULL), 0);
	assert_non_null(pem.cert_pem);
	assert_non_null(pem.key_pem);
	assert_int_not_equal(pem.fingerprint_sha256[0], '\0');
	sm_tls_pem_done(&pem);
	assert_null(pem.cert_pem);
	assert_null(pem.key_pem);
	assert_int_equal(pem.fingerprint_sha256[0], '\0');
	sm_tls_pem_done(&pem);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_self_signed),
	    cmocka_unit_test(test_self_signed_twice_differs),
	    cmocka_unit_test(test_self_signed_bad_name),
	    cmocka_unit_test_setup_teardown(test_load_files, setup_dir, teardown_dir),
	    cmocka_unit_test(test_pem_done_null),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
