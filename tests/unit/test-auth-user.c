/* SPDX-License-Identifier: MIT */
/* Users (auth-internal.h): string vectors, the user a front proxy's headers name (the cases
 * test-auth.c's table does not cover: several header names, values in order, extra keys'
 * case and percent-decoding), the user a certificate's subject names (auth-x509.c), and the
 * line that logs a trust (auth-trust.c). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <openssl/x509.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cmocka.h needs stdarg.h, stddef.h, setjmp.h and stdint.h before it. */
#include <cmocka.h>

#include "../../src/http/auth-internal.h"

#define N_ELEMENTS(a) (sizeof(a) / sizeof((a)[0]))

static char *user_string(const struct sm_auth_user *u)
{
	cJSON *j = sm_auth_user_to_json(u);
	char *s = cJSON_PrintUnformatted(j);

	cJSON_Delete(j);
	return s;
}

/* ---- string vectors ---- */

static void test_strv(void **state)
{
	struct sm_strv a = {0}, b = {0};

	(void)state;
	assert_int_equal(sm_auth_strv_push(&a, "one", 3), 0);
	assert_int_equal(sm_auth_strv_push(&a, "two-and-more", 3), 0); /* a prefix */
	assert_int_equal(sm_auth_strv_push(&a, "", 0), 0);
	assert_int_equal(a.n, 3);
	assert_string_equal(a.v[0], "one");
	assert_string_equal(a.v[1], "two");
	assert_string_equal(a.v[2], "");
	assert_null(a.v[3]); /* NULL-terminated, as names_or() relies on */

	assert_int_equal(sm_auth_strv_push(&b, "zero", 4), 0);
	assert_int_equal(sm_auth_strv_copy(&b, &a), 0); /* appends */
	assert_int_equal(b.n, 4);
	assert_string_equal(b.v[0], "zero");
	assert_string_equal(b.v[3], "");
	assert_ptr_not_equal(b.v[1], a.v[0]); /* copies */
	assert_null(b.v[4]);
	sm_strv_done(&a);
	sm_strv_done(&b);
}

/* ---- front-proxy headers ---- */

struct header_case {
	const char *what;
	const struct sm_auth_header *h;
	size_t n;
	const char *user_json; /* NULL: no user */
};

static const struct sm_auth_header h_group_order[] = {
    {"X-B", "b1"}, {"X-A", "a1"}, {"X-User", "u"}, {"X-B", "b2"}, {"X-A", ""}, {"X-A", "a2"},
};
static const struct sm_auth_header h_extra[] = {
    {"X-User", "u"},
    {"X-EXTRA-Scopes", "read"},
    {"x-extra-SCOPES", "write"},
    {"X-Other-Key%2Fwith%20Space", "v"},
    {"X-Extra-Empty", ""},
    {"X-Extra-Null", NULL},
    {"X-Extra-Trail%", "t"},
};
static const struct sm_auth_header h_user_order[] = {
    {"X-User", "second-listed"},
    {"X-Main-User", "first-listed"},
};

static const struct header_case header_cases[] = {
    /* Group headers in the order their names are listed (X-A, then X-B), each one's values
     * in the order sent, empty ones skipped. */
    {"group order", h_group_order, N_ELEMENTS(h_group_order),
     "{\"username\":\"u\",\"groups\":[\"a1\",\"a2\",\"b1\",\"b2\"],\"extra\":{}}"},
    /* Keys lower-cased then percent-decoded; any of the prefixes; values kept as sent, NULL
     * as empty; an undecodable key kept lower-cased as sent. */
    {"extra keys", h_extra, N_ELEMENTS(h_extra),
     "{\"username\":\"u\",\"groups\":[],\"extra\":{\"scopes\":[\"read\",\"write\"],"
     "\"key/with space\":[\"v\"],\"empty\":[\"\"],\"null\":[\"\"],\"trail%\":[\"t\"]}}"},
    /* The user header listed first wins, wherever it is sent. */
    {"user order", h_user_order, N_ELEMENTS(h_user_order),
     "{\"username\":\"first-listed\",\"groups\":[],\"extra\":{}}"},
};

static void test_headers(void **state)
{
	char *un[] = {"X-Main-User", "X-User", NULL};
	char *gr[] = {"X-A", "X-B", NULL};
	char *ex[] = {"X-Extra-", "X-Other-", NULL};
	struct sm_auth_header_names names = {
	    .username = {un, 2}, .group = {gr, 2}, .extra_prefix = {ex, 2}};

	(void)state;
	for (size_t i = 0; i < N_ELEMENTS(header_cases); i++) {
		const struct header_case *c = &header_cases[i];
		struct sm_auth_user u = {.name = (char *)"untouched"};
		int r = sm_auth_user_from_headers(&names, c->h, c->n, &u);
		char *s;

		if (!c->user_json) {
			assert_int_equal(r, 0);
			assert_string_equal(u.name, "untouched");
			continue;
		}
		if (r != 1)
			fail_msg("case '%s': returned %d, want 1", c->what, r);
		s = user_string(&u);
		if (strcmp(s, c->user_json) != 0)
			fail_msg("case '%s': user %s, want %s", c->what, s, c->user_json);
		free(s);
		sm_auth_user_done(&u);
	}
}

/* No user header: 0, and *ret is left as it was. */
static void test_headers_no_user(void **state)
{
	static const struct sm_auth_header h[] = {{"X-Remote-Group", "g"}, {"X-Remote-User", ""}};
	struct sm_auth_user u = {.name = (char *)"untouched"};

	(void)state;
	assert_int_equal(sm_auth_user_from_headers(NULL, h, N_ELEMENTS(h), &u), 0);
	assert_string_equal(u.name, "untouched");
	assert_int_equal(u.groups.n, 0);
}

/* ---- certificate subjects ---- */

struct subject_case {
	const char *what;
	const char *const *cn;
	size_t n_cn;
	const char *const *o;
	size_t n_o;
	const char *user_json; /* username "" when the subject has no CN */
};

static const char *const cn_one[] = {"system:kube-controller-manager"};
static const char *const cn_two[] = {"first", "last"};
static const char *const o_groups[] = {"system:masters", "", "team-a"};
static const char *const cn_utf8[] = {"Grüße"};

static const struct subject_case subject_cases[] = {
    {"one CN, no O", cn_one, 1, NULL, 0,
     "{\"username\":\"system:kube-controller-manager\",\"groups\":[],\"extra\":{}}"},
    /* Go keeps the last CommonName. */
    {"two CNs", cn_two, 2, NULL, 0, "{\"username\":\"last\",\"groups\":[],\"extra\":{}}"},
    /* Every non-empty O is a group, in order. */
    {"groups", cn_one, 1, o_groups, 3,
     "{\"username\":\"system:kube-controller-manager\",\"groups\":[\"system:masters\","
     "\"team-a\"],\"extra\":{}}"},
    {"no CN", NULL, 0, o_groups, 1,
     "{\"username\":\"\",\"groups\":[\"system:masters\"],\"extra\":{}}"},
    {"UTF-8", cn_utf8, 1, NULL, 0, "{\"username\":\"Grüße\",\"groups\":[],\"extra\":{}}"},
};

static X509 *cert_with_subject(const struct subject_case *c)
{
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();

	assert_non_null(x);
	assert_non_null(name);
	/* Interleaved, so that "last" means the last in the name, not the last added kind. */
	for (size_t i = 0; i < c->n_cn || i < c->n_o; i++) {
		if (i < c->n_o)
			/* V_ASN1_UTF8STRING as is: MBSTRING_UTF8 would refuse an empty O. */
			assert_int_equal(X509_NAME_add_entry_by_txt(name, "O", V_ASN1_UTF8STRING,
			                                            (const unsigned char *)c->o[i],
			                                            -1, -1, 0),
			                 1);
		if (i < c->n_cn)
			assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
			                                            (const unsigned char *)c->cn[i],
			                                            -1, -1, 0),
			                 1);
	}
	assert_int_equal(X509_set_subject_name(x, name), 1);
	X509_NAME_free(name);
	return x;
}

static void test_subject_user(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_ELEMENTS(subject_cases); i++) {
		const struct subject_case *c = &subject_cases[i];
		X509 *x = cert_with_subject(c);
		struct sm_auth_user u = {0};
		char *s;

		assert_int_equal(sm_auth_x509_subject_user(x, &u), 0);
		if (c->n_cn == 0 && u.name)
			fail_msg("case '%s': name '%s', want none", c->what, u.name);
		s = user_string(&u);
		if (strcmp(s, c->user_json) != 0)
			fail_msg("case '%s': user %s, want %s", c->what, s, c->user_json);
		free(s);
		sm_auth_user_done(&u);
		X509_free(x);
	}
}

/* ---- the trust summary (auth-trust.c) ---- */

static void test_trust_summary(void **state)
{
	char *names_v[] = {"front-proxy-client", "aggregator", NULL};
	struct sm_strv names = {names_v, 2};
	struct sm_strv none = {0};
	char a[512], b[512], c[512], small[40];

	(void)state;
	sm_auth_trust_summary("PEM-1", NULL, &names, a, sizeof(a));
	assert_non_null(strstr(a, "front-proxy CA set, client CA none, allowed names "
	                          "[front-proxy-client aggregator], CA digest "));
	assert_int_equal(strlen(strstr(a, "CA digest ") + 10), 12); /* 6 bytes in hex */

	/* The digest follows the CA bundles, not the names. */
	sm_auth_trust_summary("PEM-1", NULL, &none, b, sizeof(b));
	assert_string_equal(strstr(a, "CA digest "), strstr(b, "CA digest "));
	sm_auth_trust_summary("PEM-2", NULL, &none, c, sizeof(c));
	assert_string_not_equal(strstr(b, "CA digest "), strstr(c, "CA digest "));
	/* The same bundle as the other CA is another trust. */
	sm_auth_trust_summary(NULL, "PEM-1", &none, c, sizeof(c));
	assert_non_null(strstr(c, "front-proxy CA none, client CA set, allowed names [], "));
	assert_string_not_equal(strstr(b, "CA digest "), strstr(c, "CA digest "));

	/* Truncated, never overrun. */
	memset(small, 'x', sizeof(small));
	sm_auth_trust_summary("PEM-1", "PEM-2", &names, small, 30);
	assert_int_equal(strlen(small), 29);
	assert_int_equal(small[30], 'x');
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_strv),
	    cmocka_unit_test(test_headers),
	    cmocka_unit_test(test_headers_no_user),
	    cmocka_unit_test(test_subject_user),
	    cmocka_unit_test(test_trust_summary),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
