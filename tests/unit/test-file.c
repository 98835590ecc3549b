/* SPDX-License-Identifier: MIT */
/* Small files read whole and secrets from a variable or a file: contents, bounds, errors. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* cmocka.h needs stdarg.h, stddef.h, setjmp.h and stdint.h before it. */
#include <cmocka.h>

#include "scalemetrics/file.h"

static char dir[64];

static int setup(void **state)
{
	(void)state;
	(void)snprintf(dir, sizeof(dir), "/tmp/sm-test-file.XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static const char *write_file(const char *name, const void *data, size_t len)
{
	static char path[128];
	FILE *f;

	(void)snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "we");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
	return path;
}

static void test_reads_whole_file(void **state)
{
	char big[100000];
	const char *path;
	char *buf = NULL;
	size_t len = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)('a' + i % 26);
	path = write_file("big", big, sizeof(big));
	assert_int_equal(sm_file_read(path, sizeof(big), 0, &buf, &len, NULL), 0);
	assert_int_equal(len, sizeof(big));
	assert_memory_equal(buf, big, sizeof(big));
	assert_int_equal(buf[len], '\0');
	free(buf);
}

static void test_empty_file_is_empty_string(void **state)
{
	const char *path;
	char *buf = NULL;
	size_t len = 7;

	(void)state;
	path = write_file("empty", "", 0);
	assert_int_equal(sm_file_read(path, 10, SM_FILE_REGULAR, &buf, &len, NULL), 0);
	assert_int_equal(len, 0);
	assert_string_equal(buf, "");
	free(buf);
}

static void test_bound(void **state)
{
	struct sm_error e = {0};
	const char *path;
	char *buf = NULL;
	char msg[600];

	(void)state;
	path = write_file("eleven", "0123456789\n", 11);
	assert_int_equal(sm_file_read(path, 11, 0, &buf, NULL, NULL), 0);
	free(buf);
	buf = NULL;
	assert_int_equal(sm_file_read(path, 10, 0, &buf, NULL, &e), -EFBIG);
	assert_null(buf);
	sm_error_format(&e, msg, sizeof(msg));
	assert_non_null(strstr(msg, "/eleven: larger than 10 bytes"));
}

static void test_missing_and_not_regular(void **state)
{
	struct sm_error e = {0};
	char *buf = NULL;
	char msg[600];

	(void)state;
	assert_int_equal(sm_file_read("/nonexistent/x", 10, 0, &buf, NULL, &e), -ENOENT);
	sm_error_format(&e, msg, sizeof(msg));
	assert_string_equal(msg, "/nonexistent/x: cannot open: No such file or directory");
	assert_int_equal(sm_file_read(dir, 10, SM_FILE_REGULAR, &buf, NULL, &e), -EINVAL);
	assert_string_equal(e.message, "not a regular file");
	/* A directory opens but does not read. */
	assert_int_equal(sm_file_read(dir, 10, 0, &buf, NULL, &e), -EISDIR);
	assert_null(buf);
}

static void test_secret_from_file_drops_newline(void **state)
{
	const char *path;
	char *s = NULL;

	(void)state;
	path = write_file("pw", "s3cret\r\n", 8);
	assert_int_equal(sm_secret_read(NULL, path, 64, "password", &s, NULL), 0);
	assert_string_equal(s, "s3cret");
	free(s);
}

static void test_secret_env_wins_and_errors(void **state)
{
	struct sm_error e = {0};
	const char *path;
	char *s = NULL;

	(void)state;
	path = write_file("dsn", "from-file", 9);
	assert_int_equal(setenv("SM_TEST_FILE_DSN", "from-env\n", 1), 0);
	assert_int_equal(sm_secret_read("SM_TEST_FILE_DSN", path, 64, "dsn", &s, NULL), 0);
	assert_string_equal(s, "from-env");
	free(s);
	s = NULL;

	assert_int_equal(sm_secret_read("SM_TEST_FILE_UNSET", path, 64, "dsn", &s, &e), -ENOENT);
	assert_string_equal(e.message,
	                    "environment variable 'SM_TEST_FILE_UNSET' (dsn_env) is not set");
	path = write_file("blank", "\n", 1);
	assert_int_equal(sm_secret_read(NULL, path, 64, "password", &s, &e), -EINVAL);
	assert_non_null(strstr(e.message, "/blank' is empty"));
	assert_int_equal(sm_secret_read(NULL, path, 0, "password", &s, &e), -EFBIG);
	assert_int_equal(sm_secret_read(NULL, "/nonexistent/pw", 64, "password", &s, &e), -ENOENT);
	assert_string_equal(
	    e.message, "password_file '/nonexistent/pw': cannot open: No such file or directory");
	assert_null(s);
	/* Neither given: no secret, no error. */
	s = (char *)"untouched";
	assert_int_equal(sm_secret_read(NULL, "", 64, "password", &s, &e), 0);
	assert_null(s);
}

static void test_token_file_reread_on_change(void **state)
{
	struct sm_token_file t = {0};
	struct sm_error e = {0};
	const char *value;
	char path[128];

	(void)state;
	(void)snprintf(path, sizeof(path), "%s", write_file("token", "abc \n", 5));
	t.path = path;
	assert_int_equal(sm_token_file_refresh(&t, 64, &e), 0);
	assert_string_equal(t.value, "abc");
	value = t.value;
	/* Unchanged: not read again (the same buffer). */
	assert_int_equal(sm_token_file_refresh(&t, 64, &e), 0);
	assert_ptr_equal(t.value, value);
	(void)write_file("token", "rotated-token", 13);
	assert_int_equal(sm_token_file_refresh(&t, 64, &e), 0);
	assert_string_equal(t.value, "rotated-token");
	/* Gone: an error, and the last value stays. */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(sm_token_file_refresh(&t, 64, &e), -ENOENT);
	assert_string_equal(t.value, "rotated-token");
	sm_token_file_done(&t);
	assert_null(t.value);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_reads_whole_file),
	    cmocka_unit_test(test_empty_file_is_empty_string),
	    cmocka_unit_test(test_bound),
	    cmocka_unit_test(test_missing_and_not_regular),
	    cmocka_unit_test(test_secret_from_file_drops_newline),
	    cmocka_unit_test(test_secret_env_wins_and_errors),
	    cmocka_unit_test(test_token_file_reread_on_change),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
