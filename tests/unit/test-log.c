/* SPDX-License-Identifier: MIT */
/* Log lines with fields (the access log's), in logfmt and JSON: bare and quoted values,
 * numbers, milliseconds from microseconds, lists, fields left out, escapes. */
/* cmocka needs setjmp.h, stdarg.h and stddef.h before it. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "scalemetrics/log.h"

/* Runs one sm_log_fields with stderr sent to a temporary file; returns what was written
 * (malloc'd), which must be exactly one line. */
static char *capture(enum sm_log_format format, const char *ctx, const struct sm_log_field *fields,
                     size_t n)
{
	FILE *f = tmpfile();
	int saved;
	long len;
	char *buf;

	assert_non_null(f);
	saved = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
	assert_true(saved >= 0);
	(void)close(STDERR_FILENO);
	assert_int_equal(fcntl(fileno(f), F_DUPFD_CLOEXEC, STDERR_FILENO), STDERR_FILENO);
	sm_log_setup(SM_LOG_INFO, format);
	sm_log_fields(SM_LOG_INFO, ctx, "request", fields, n);
	(void)close(STDERR_FILENO);
	assert_int_equal(fcntl(saved, F_DUPFD_CLOEXEC, STDERR_FILENO), STDERR_FILENO);
	(void)close(saved);
	sm_log_setup(SM_LOG_INFO, SM_LOG_FORMAT_LOGFMT);

	len = ftell(f);
	assert_true(len > 0);
	buf = malloc((size_t)len + 1);
	assert_non_null(buf);
	rewind(f);
	assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
	buf[len] = '\0';
	(void)fclose(f);
	assert_int_equal(strchr(buf, '\n') - buf, len - 1); /* one line */
	return buf;
}

/* The line without its timestamp, which changes. */
static void assert_line(const char *line, const char *expected_after_ts)
{
	const char *from = strstr(line, line[0] == '{' ? "\"level\"" : "level=");

	assert_non_null(from);
	assert_string_equal(from, expected_after_ts);
}

static const char *const groups[] = {"devs", "system:authenticated"};
static const char *const odd_groups[] = {"a b", "c\"d"};

static const struct sm_log_field fields[] = {
    {.key = "method", .type = SM_LOG_FIELD_STRING, .str = "GET"},
    {.key = "path", .type = SM_LOG_FIELD_STRING, .str = "/apis/x?labelSelector=a%3Db c"},
    {.key = "status", .type = SM_LOG_FIELD_INT, .num = 403},
    {.key = "bytes", .type = SM_LOG_FIELD_INT, .num = 0},
    {.key = "duration_ms", .type = SM_LOG_FIELD_MILLIS, .num = 412},
    {.key = "long_ms", .type = SM_LOG_FIELD_MILLIS, .num = 1234567},
    {.key = "user", .type = SM_LOG_FIELD_STRING, .str = NULL}, /* left out */
    {.key = "groups", .type = SM_LOG_FIELD_STRV, .strv = groups, .n_strv = 2},
    {.key = "none", .type = SM_LOG_FIELD_STRV, .strv = groups, .n_strv = 0}, /* left out */
    {.key = "odd", .type = SM_LOG_FIELD_STRV, .strv = odd_groups, .n_strv = 2},
    {.key = "empty", .type = SM_LOG_FIELD_STRING, .str = ""},
    {.key = "reason", .type = SM_LOG_FIELD_STRING, .str = "line\nbreak \"quoted\" \x01"},
};

static void test_logfmt(void **state)
{
	char *line =
	    capture(SM_LOG_FORMAT_LOGFMT, "http", fields, sizeof(fields) / sizeof(fields[0]));

	(void)state;
	assert_line(line, "level=info ctx=http msg=\"request\" method=GET "
	                  "path=\"/apis/x?labelSelector=a%3Db c\" status=403 bytes=0 "
	                  "duration_ms=0.412 long_ms=1234.567 "
	                  "groups=devs,system:authenticated odd=\"a b,c\\\"d\" empty=\"\" "
	                  "reason=\"line\\nbreak \\\"quoted\\\" \\u0001\"\n");
	free(line);
}

static void test_json(void **state)
{
	char *line =
	    capture(SM_LOG_FORMAT_JSON, "http", fields, sizeof(fields) / sizeof(fields[0]));

	(void)state;
	assert_line(line, "\"level\":\"info\",\"ctx\":\"http\",\"msg\":\"request\","
	                  "\"method\":\"GET\",\"path\":\"/apis/x?labelSelector=a%3Db c\","
	                  "\"status\":403,\"bytes\":0,\"duration_ms\":0.412,"
	                  "\"long_ms\":1234.567,"
	                  "\"groups\":[\"devs\",\"system:authenticated\"],"
	                  "\"odd\":[\"a b\",\"c\\\"d\"],\"empty\":\"\","
	                  "\"reason\":\"line\\nbreak \\\"quoted\\\" \\u0001\"}\n");
	free(line);
}

static void test_no_fields(void **state)
{
	char *line;

	(void)state;
	line = capture(SM_LOG_FORMAT_LOGFMT, "http", NULL, 0);
	assert_line(line, "level=info ctx=http msg=\"request\"\n");
	free(line);
	line = capture(SM_LOG_FORMAT_JSON, NULL, NULL, 0);
	assert_line(line, "\"level\":\"info\",\"msg\":\"request\"}\n");
	free(line);
}

/* A line longer than the stack buffer is still whole. */
static void test_long_value(void **state)
{
	static char big[3000];
	const struct sm_log_field f[] = {
	    {.key = "a", .type = SM_LOG_FIELD_STRING, .str = big},
	    {.key = "b", .type = SM_LOG_FIELD_STRING, .str = big},
	    {.key = "end", .type = SM_LOG_FIELD_MILLIS, .num = -7},
	};
	char *line;
	size_t len;

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	line = capture(SM_LOG_FORMAT_LOGFMT, NULL, f, 3);
	len = strlen(line);
	assert_true(len > 6000);
	assert_string_equal(line + len - 13, "x end=-0.007\n");
	free(line);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_logfmt),
	    cmocka_unit_test(test_json),
	    cmocka_unit_test(test_no_fields),
	    cmocka_unit_test(test_long_value),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
