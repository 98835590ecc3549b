/* SPDX-License-Identifier: MIT */
#ifndef SM_PROMTEXT_H
#define SM_PROMTEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scalemetrics/error.h"
#include "scalemetrics/series.h"

/* The Prometheus text exposition format 0.0.4: a pure parser, no I/O. */

enum sm_prom_type {
	SM_PROM_UNTYPED,
	SM_PROM_COUNTER,
	SM_PROM_GAUGE,
	SM_PROM_HISTOGRAM,
	SM_PROM_SUMMARY,
	SM_PROM_TYPE_MAX,
	SM_PROM_TYPE_INVALID = -1,
};

#define SM_PROMTEXT_MAX_LABELS 64 /* label pairs on one sample line */

/* One sample line. Strings are borrowed and valid only during the callback; label values
 * are unescaped; labels are in the order written. */
struct sm_prom_sample {
	const char *name;
	const struct sm_label *labels;
	size_t n_labels;
	double value; /* may be NaN or +-Inf */
	bool has_timestamp;
	int64_t timestamp_ms;
	enum sm_prom_type type; /* from the last # TYPE of the sample's family; UNTYPED if none */
	unsigned line;          /* 1-based */
};

/* Called once per sample. A negative return stops parsing and is returned by
 * sm_promtext_parse (the callback fills reterr itself if it wants a message). */
typedef int (*sm_promtext_sample_fn)(const struct sm_prom_sample *s, void *userdata);

/* Parses a whole exposition (need not be NUL-terminated). Blank lines and comments are
 * skipped; "# HELP" and "# TYPE" lines are checked; anything after a '#' that follows a
 * sample's value or timestamp (an OpenMetrics exemplar) is ignored; a trailing '\r' on a line
 * is ignored. Returns the number of samples (>= 0), -EINVAL for a malformed line with
 * reterr->line set and a message "line N: ..." naming the problem, -ENOMEM, or the
 * callback's negative return. */
int sm_promtext_parse(const char *text, size_t len, sm_promtext_sample_fn fn, void *userdata,
                      struct sm_error *reterr) SM_MUSTCHECK;

enum sm_prom_type sm_prom_type_from_string(const char *s);
const char *sm_prom_type_to_string(enum sm_prom_type t);

/* Metric names [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]*. */
bool sm_promtext_metric_name_is_valid(const char *s);
bool sm_promtext_label_name_is_valid(const char *s);

#endif
