/* SPDX-License-Identifier: MIT */
#ifndef SM_LOG_H
#define SM_LOG_H

#include <stdbool.h>

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

/* The one mutable global besides the loaded config handle: the current level. */
extern enum sm_log_level sm_log_level_current;

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
