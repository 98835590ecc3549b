/* SPDX-License-Identifier: MIT */
/* The HTTPS server's pure parts (server-internal.h): listen addresses, their display form,
 * request targets split into path and query, and the access log's hiding of credentials in
 * queries. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* cmocka.h needs stdarg.h, stddef.h, setjmp.h and stdint.h before it. */
#include <cmocka.h>

#include "../../src/http/server-internal.h"

#define N_ELEMENTS(a) (sizeof(a) / sizeof((a)[0]))

/* ---- listen addresses ---- */

struct listen_case {
	const char *in;
	int ret;
	const char *shown; /* sm_http_address_format of the result */
	bool v6, any;
	const char *error; /* a substring of the message */
};

static const struct listen_case listen_cases[] = {
    {"127.0.0.1:6443", 0, "127.0.0.1:6443", false, false, NULL},
    {"0.0.0.0:443", 0, "0.0.0.0:443", false, true, NULL},
    {":8443", 0, "0.0.0.0:8443", false, true, NULL},
    {"[::1]:6443", 0, "[::1]:6443", true, false, NULL},
    {"[::]:0", 0, "[::]:0", true, true, NULL},
    {"10.1.2.3:65535", 0, "10.1.2.3:65535", false, false, NULL},
    {"", -EINVAL, NULL, false, false, "empty listen address"},
    {"127.0.0.1", -EINVAL, NULL, false, false, "expected host:port"},
    {"127.0.0.1:65536", -EINVAL, NULL, false, false, "bad port '65536'"},
    {"127.0.0.1:", -EINVAL, NULL, false, false, "bad port ''"},
    {"127.0.0.1:80x", -EINVAL, NULL, false, false, "bad port '80x'"},
    {"::1:6443", -EINVAL, NULL, false, false, "write IPv6 addresses in brackets"},
    {"[::1:6443", -EINVAL, NULL, false, false, "expected [IPv6]:port"},
    {"[::1]6443", -EINVAL, NULL, false, false, "expected [IPv6]:port"},
    {"[127.0.0.1]:6443", -EINVAL, NULL, false, false, "is not an IPv6 address"},
};

static void test_listen_parse(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_ELEMENTS(listen_cases); i++) {
		const struct listen_case *c = &listen_cases[i];
		struct sm_http_listen_addr la;
		struct sm_error err = {0};
		char shown[128] = "";
		uint16_t port;
		int r;

		memset(&la, 0x5a, sizeof(la));
		r = sm_http_listen_parse(c->in, &la, &err);
		if (r != c->ret)
			fail_msg("case '%s': returned %d, want %d (%s)", c->in, r, c->ret,
			         err.message);
		if (r < 0) {
			const unsigned char *p = (const unsigned char *)&la;

			if (!strstr(err.message, c->error))
				fail_msg("case '%s': message '%s', want '%s' in it", c->in,
				         err.message, c->error);
			for (size_t b = 0; b < sizeof(la); b++)
				if (p[b] != 0x5a)
					fail_msg("case '%s': ret touched on error", c->in);
			continue;
		}
		if (la.v6 != c->v6 || la.any != c->any)
			fail_msg("case '%s': v6 %d any %d, want %d %d", c->in, la.v6, la.any, c->v6,
			         c->any);
		port = ntohs(la.v6 ? ((const struct sockaddr_in6 *)&la.ss)->sin6_port
		                   : ((const struct sockaddr_in *)&la.ss)->sin_port);
		sm_http_address_format(&la.ss, port, shown, sizeof(shown));
		if (strcmp(shown, c->shown) != 0)
			fail_msg("case '%s': shown as '%s', want '%s'", c->in, shown, c->shown);
		assert_int_equal(la.len,
		                 la.v6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
	}
}

/* A host name is resolved once, at parse time. */
static void test_listen_parse_name(void **state)
{
	struct sm_http_listen_addr la;
	struct sm_error err = {0};
	char shown[128];

	(void)state;
	assert_int_equal(sm_http_listen_parse("localhost:6443", &la, &err), 0);
	sm_http_address_format(&la.ss, 6443, shown, sizeof(shown));
	if (strcmp(shown, "127.0.0.1:6443") != 0 && strcmp(shown, "[::1]:6443") != 0)
		fail_msg("localhost shown as '%s'", shown);
	assert_false(la.any);
}

/* ---- request targets ---- */

struct target_case {
	const char *in;
	const char *path, *query; /* query NULL: none */
};

static const struct target_case target_cases[] = {
    {"/apis/custom.metrics.k8s.io/v1beta2", "/apis/custom.metrics.k8s.io/v1beta2", NULL},
    {"/a?b=c&d", "/a", "b=c&d"},
    {"/a?", "/a", ""},
    {"/a?b?c", "/a", "b?c"},
    {"https://host:6443/x/y?q=1", "/x/y", "q=1"},
    {"HTTP://host/x", "/x", NULL},
    {"http://host", "/", NULL},
    {"http://host?x=1", "/", "x=1"},
    {"*", "*", NULL},
};

static void test_split_target(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_ELEMENTS(target_cases); i++) {
		const struct target_case *c = &target_cases[i];
		char *t = strdup(c->in);
		const char *path = NULL, *query = "unset";

		assert_non_null(t);
		sm_http_split_target(t, &path, &query);
		if (strcmp(path, c->path) != 0)
			fail_msg("case '%s': path '%s', want '%s'", c->in, path, c->path);
		if (!c->query != !query || (query && strcmp(query, c->query) != 0))
			fail_msg("case '%s': query '%s', want '%s'", c->in,
			         query ? query : "(none)", c->query ? c->query : "(none)");
		free(t);
	}
}

/* ---- the access log's target ---- */

struct shown_case {
	const char *path, *query;
	const char *want;
};

static const struct shown_case shown_cases[] = {
    {"/a", NULL, "/a"},
    {"/a", "", "/a?"},
    {"/a", "labelSelector=x%3Dy", "/a?labelSelector=x%3Dy"},
    {"/a", "token=abc", "/a?token=***"},
    {"/a", "x=1&access_token=abc&y=2", "/a?x=1&access_token=***&y=2"},
    {"/a", "Password=p&API_KEY=k&sig=s", "/a?Password=***&API_KEY=***&sig=***"},
    {"/a", "a=&b", "/a?a=&b"},
    {"/a", "token", "/a?token"},     /* no value: nothing to hide */
    {"/a", "x=token", "/a?x=token"}, /* the name decides, not the value */
    {"/a", "auth=&auth=&auth=", "/a?auth=***&auth=***&auth=***"},
};

static void test_shown_target(void **state)
{
	(void)state;
	for (size_t i = 0; i < N_ELEMENTS(shown_cases); i++) {
		const struct shown_case *c = &shown_cases[i];
		char *s = sm_http_shown_target(c->path, c->query);

		assert_non_null(s);
		if (strcmp(s, c->want) != 0)
			fail_msg("case '%s?%s': '%s', want '%s'", c->path,
			         c->query ? c->query : "(none)", s, c->want);
		free(s);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_listen_parse),
	    cmocka_unit_test(test_listen_parse_name),
	    cmocka_unit_test(test_split_target),
	    cmocka_unit_test(test_shown_target),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
