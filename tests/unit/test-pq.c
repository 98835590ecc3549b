/* SPDX-License-Identifier: MIT */
/* The libpq helpers' DSN check: a DSN libpq cannot parse is refused with libpq's reason, and
 * the pieces of the DSN libpq quotes in it (a password among them) are redacted. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* cmocka.h needs stdarg.h, stddef.h, setjmp.h and stdint.h before it. */
#include <cmocka.h>

#include "scalemetrics/error.h"

#include "../../src/collectors/pq-internal.h"

static const struct {
	const char *dsn;
	int r;
	const char *message; /* the whole message, or NULL when r == 0 */
} cases[] = {
    {"host=127.0.0.1 port=5432 dbname=app user=app password=SECRET", 0, NULL},
    {"postgresql://app:SECRET@127.0.0.1:5432/app?sslmode=disable", 0, NULL},
    {"postgresql://app:Ab3/SECRET@db:5432/app", -EINVAL,
     "invalid DSN: its user name or password holds a '/' or '?': percent-encode them (%2F, "
     "%3F)"},
    {"postgres://app:Ab3?SECRET@db/app", -EINVAL,
     "invalid DSN: its user name or password holds a '/' or '?': percent-encode them (%2F, "
     "%3F)"},
    {"postgresql://app:SECRET@[::1/app", -EINVAL,
     "invalid DSN: end of string reached when looking for matching \"]\" in IPv6 host address "
     "in URI: \"postgresql://***@[::1/app\""},
    {"postgresql://app:SECRET%zz@127.0.0.1/app", -EINVAL,
     "invalid DSN: invalid percent-encoded token: \"***\""},
    {"host=h password SECRET", -EINVAL,
     "invalid DSN: missing \"=\" after \"password\" in connection info string"},
    {"host=h SECRET=x", -EINVAL, "invalid DSN: invalid connection option \"***\""},
    {"host=h password='SECRET", -EINVAL,
     "invalid DSN: unterminated quoted string in connection info string"},
    {"postgresql://app:SECRET@h/app?SECRET=1", -EINVAL,
     "invalid DSN: invalid URI query parameter: \"***\""},
};

static void test_dsn_check(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sm_error err = {0};
		int r = sm_pq_dsn_check(cases[i].dsn, &err);

		if (r != cases[i].r)
			fail_msg("case %zu '%s': returned %d, want %d (%s)", i, cases[i].dsn, r,
			         cases[i].r, err.message);
		if (strstr(err.message, "SECRET"))
			fail_msg("case %zu '%s': the password is in '%s'", i, cases[i].dsn,
			         err.message);
		if (cases[i].message && strcmp(err.message, cases[i].message) != 0)
			fail_msg("case %zu '%s': message '%s', want '%s'", i, cases[i].dsn,
			         err.message, cases[i].message);
		if (!cases[i].message && err.message[0])
			fail_msg("case %zu '%s': unexpected message '%s'", i, cases[i].dsn,
			         err.message);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_dsn_check),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
