/* SPDX-License-Identifier: MIT */
#ifndef SM_LOG_H
#define SM_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scalemetrics/error.h"

enum sm_log_level {
	SM_LOG_ERROR,
	SM_LOG_WARN,
	SM_LOG_INFO,
	SM_LOG_DEBUG,
	SM_LOG_LEVEL_MAX,
	SM_LOG_LEVEL_INVALID = -1,
};

enum sm_log_format {
	SM_LOG_FORMAT_LOGFMT,
	SM_LOG_FORMAT_JSON,
	SM_LOG_FORMAT_MAX,
	SM_LOG_FORMAT_INVALID = -1,
};

/* The one mutable global besides the loaded config handle: the current level. Atomic: a
 * config reload changes it while other threads log. */
extern _Atomic(enum sm_log_level) sm_log_level_current;

void sm_log_setup(enum sm_log_level level, enum sm_log_format format);
enum sm_log_level sm_log_level_from_string(const char *s);
const char *sm_log_level_to_string(enum sm_log_level l);
/* "logfmt" or "json" (case-insensitive); SM_LOG_FORMAT_INVALID otherwise. */
enum sm_log_format sm_log_format_from_string(const char *s);
const char *sm_log_format_to_string(enum sm_log_format f);

/* One line per event on stderr: ts=... level=... ctx=... msg="..." (logfmt) or
 * {"ts":...,"level":...,"ctx":...,"msg":...} (JSON), written with one write(), so thread-safe.
 * ctx is the source name or request id; may be NULL (then omitted). Messages longer than 16 KiB
 * are cut. */
void sm_log_write(enum sm_log_level level, const char *ctx, const char *fmt, ...) SM_PRINTF(3, 4);

enum sm_log_field_type {
	SM_LOG_FIELD_STRING, /* str; NULL: the field is left out */
	SM_LOG_FIELD_INT,    /* num */
	SM_LOG_FIELD_MILLIS, /* num microseconds, written as milliseconds with three decimals */
	SM_LOG_FIELD_STRV,   /* strv[n_strv]: a JSON array, or comma-separated in logfmt; left
	                      * out when empty */
	SM_LOG_FIELD_TYPE_MAX,
};

/* One key=value pair after msg (sm_log_fields). key is a plain token, not ts, level, ctx or
 * msg. */
struct sm_log_field {
	const char *key;
	enum sm_log_field_type type;
	const char *str;
	int64_t num;
	const char *const *strv;
	size_t n_strv;
};

/* A line like sm_log_write's with a fixed msg followed by fields: key=value in logfmt (bare
 * when the value is a plain token, else quoted), members in JSON (strings, numbers, arrays of
 * strings). Not level-checked: test sm_log_level_current first, as the macros do. */
void sm_log_fields(enum sm_log_level level, const char *ctx, const char *msg,
                   const struct sm_log_field *fields, size_t n_fields);

#define sm_log_at(lvl, ctx, ...)                                                                   \
	do {                                                                                       \
		if ((lvl) <= sm_log_level_current)                                                 \
			sm_log_write((lvl), (ctx), __VA_ARGS__);                                   \
	} while (0)
#define sm_log_error(ctx, ...) sm_log_at(SM_LOG_ERROR, ctx, __VA_ARGS__)
#define sm_log_warn(ctx, ...)  sm_log_at(SM_LOG_WARN, ctx, __VA_ARGS__)
#define sm_log_info(ctx, ...)  sm_log_at(SM_LOG_INFO, ctx, __VA_ARGS__)
#define sm_log_debug(ctx, ...) sm_log_at(SM_LOG_DEBUG, ctx, __VA_ARGS__)

#endif
