/* SPDX-License-Identifier: MIT */
/* `check --probe`: one round of every configured source, on the calling thread, summed up
 * in a table an operator can read at 3 a.m. */
#include "scalemetrics/probe.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scalemetrics/clock.h"
#include "scalemetrics/config.h"
#include "scalemetrics/error.h"
#include "scalemetrics/series.h"
#include "scalemetrics/source.h"

#define MAX_SAMPLES   3
#define MAX_COL_WIDTH 72

struct row {
	const char *source;
	const char *type;
	char status[sizeof(((struct sm_error *)0)->message) + 16];
	char series[48];
	char samples[MAX_SAMPLES * 256 + 8];
	char time[24];
	char note[sizeof(((struct sm_error *)0)->message)]; /* a round's per-series warning */
	bool failed;
};

/* Appends to buf at *len, truncating (with "...") instead of overflowing. */
static void append(char *buf, size_t size, size_t *len, const char *fmt, ...) SM_PRINTF(4, 5);
static void append(char *buf, size_t size, size_t *len, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*len + 1 >= size)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf + *len, size - *len, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= size - *len) {
		*len = size - 1;
		if (size > 4)
			memcpy(buf + size - 4, "...", 4);
		return;
	}
	*len += (size_t)n;
}

/* metric{a="x",b="y"}=value, for at most MAX_SAMPLES series. */
static void format_samples(const struct sm_batch *b, char *buf, size_t size)
{
	size_t len = 0, n = sm_batch_count(b);

	buf[0] = '\0';
	for (size_t i = 0; i < n && i < MAX_SAMPLES; i++) {
		const struct sm_series *s = sm_batch_get(b, i);

		append(buf, size, &len, "%s%s", i ? ", " : "", s->metric);
		if (s->n_labels > 0) {
			append(buf, size, &len, "{");
			for (size_t j = 0; j < s->n_labels; j++)
				append(buf, size, &len, "%s%s=\"%s\"", j ? "," : "",
				       s->labels[j].name, s->labels[j].value);
			append(buf, size, &len, "}");
		}
		append(buf, size, &len, "=%.15g", s->value);
	}
	if (n > MAX_SAMPLES)
		append(buf, size, &len, ", ...");
	if (n == 0)
		append(buf, size, &len, "-");
}

static void probe_one(const struct sm_source_config *src, struct row *row)
{
	const struct sm_source_ops *ops = src->ops ? src->ops : sm_source_ops_find(src->type);
	struct sm_error err = {0};
	struct sm_batch *batch = NULL;
	void *state = NULL;
	int64_t start, elapsed = -1;
	size_t dropped;
	int r;

	row->source = src->name;
	row->type = src->type;
	(void)snprintf(row->series, sizeof(row->series), "-");
	(void)snprintf(row->samples, sizeof(row->samples), "-");
	(void)snprintf(row->time, sizeof(row->time), "-");

	(void)fprintf(stderr, "probing '%s' (%s)...", src->name, src->type);
	(void)fflush(stderr);
	if (!ops) {
		r = -EINVAL;
		sm_error_set(&err, "unknown source type '%s'", src->type);
		goto out;
	}
	r = ops->create(src, &state);
	if (r < 0) {
		sm_error_set(&err, "cannot set up the source: %s", strerror(-r));
		goto out;
	}
	batch = sm_batch_new(src->max_series);
	if (!batch) {
		r = -ENOMEM;
		sm_error_set(&err, "out of memory");
		goto out;
	}
	start = sm_time_mono_ms();
	r = ops->collect(state, batch, &err);
	elapsed = sm_time_mono_ms() - start;
	(void)snprintf(row->time, sizeof(row->time), "%lld ms", (long long)elapsed);
	if (r < 0) {
		if (err.message[0] == '\0')
			sm_error_set(&err, "%s", strerror(-r));
		goto out;
	}
	dropped = sm_batch_dropped(batch);
	if (dropped > 0)
		(void)snprintf(row->series, sizeof(row->series), "%zu (+%zu over max_series)",
		               sm_batch_count(batch), dropped);
	else
		(void)snprintf(row->series, sizeof(row->series), "%zu", sm_batch_count(batch));
	format_samples(batch, row->samples, sizeof(row->samples));
	if (err.message[0])
		(void)snprintf(row->note, sizeof(row->note), "%s", err.message);
out:
	row->failed = r < 0;
	if (row->failed)
		(void)snprintf(row->status, sizeof(row->status), "FAILED: %s", err.message);
	else
		(void)snprintf(row->status, sizeof(row->status), "ok");
	if (elapsed >= 0)
		(void)fprintf(stderr, " %s (%lld ms)\n", row->failed ? "FAILED" : "ok",
		              (long long)elapsed);
	else
		(void)fprintf(stderr, " FAILED\n");
	sm_batch_free(batch);
	if (ops && state)
		ops->destroy(state);
}

static size_t max_size(size_t a, size_t b)
{
	return a > b ? a : b;
}

static size_t min_size(size_t a, size_t b)
{
	return a < b ? a : b;
}

enum { COL_SOURCE, COL_TYPE, COL_STATUS, COL_SERIES, COL_SAMPLES, COL_TIME, N_COLS };

static void row_columns(const struct row *r, const char *cols[N_COLS])
{
	cols[COL_SOURCE] = r->source;
	cols[COL_TYPE] = r->type;
	cols[COL_STATUS] = r->status;
	cols[COL_SERIES] = r->series;
	cols[COL_SAMPLES] = r->samples;
	cols[COL_TIME] = r->time;
}

/* Columns padded to w, the last one not. */
static void print_row(FILE *out, const char *const cols[N_COLS], const size_t w[N_COLS])
{
	for (size_t c = 0; c < N_COLS; c++) {
		const char *sep = c + 1 < N_COLS ? "  " : "\n";

		if (c + 1 == N_COLS)
			(void)fprintf(out, "%s%s", cols[c], sep);
		else
			(void)fprintf(out, "%-*s%s", (int)w[c], cols[c], sep);
	}
}

int sm_probe_run(const struct sm_config *cfg, FILE *out)
{
	static const char *const headers[N_COLS] = {
	    [COL_SOURCE] = "SOURCE", [COL_TYPE] = "TYPE",       [COL_STATUS] = "STATUS",
	    [COL_SERIES] = "SERIES", [COL_SAMPLES] = "SAMPLES", [COL_TIME] = "TIME",
	};
	struct sigaction ignore = {.sa_handler = SIG_IGN}, saved;
	struct row *rows = NULL;
	size_t w[N_COLS];
	bool any_failed = false;
	int ret;

	if (cfg->n_sources > 0) {
		rows = calloc(cfg->n_sources, sizeof(*rows));
		if (!rows)
			return -ENOMEM;
	}
	/* A Redis or PostgreSQL server closing its end must cost a failed round, not the process.
	 */
	(void)sigemptyset(&ignore.sa_mask);
	(void)sigaction(SIGPIPE, &ignore, &saved);
	for (size_t i = 0; i < cfg->n_sources; i++)
		probe_one(&cfg->sources[i], &rows[i]);
	(void)sigaction(SIGPIPE, &saved, NULL);

	for (size_t c = 0; c < N_COLS; c++)
		w[c] = strlen(headers[c]);
	/* A long error or sample list overflows its own row rather than widening the column
	 * for every other row. */
	for (size_t i = 0; i < cfg->n_sources; i++) {
		const char *cols[N_COLS];

		row_columns(&rows[i], cols);
		for (size_t c = 0; c < N_COLS; c++)
			w[c] = max_size(w[c], min_size(strlen(cols[c]), MAX_COL_WIDTH));
	}
	print_row(out, headers, w);
	for (size_t i = 0; i < cfg->n_sources; i++) {
		const char *cols[N_COLS];

		row_columns(&rows[i], cols);
		print_row(out, cols, w);
		if (rows[i].note[0])
			(void)fprintf(out, "%-*s  note: %s\n", (int)w[COL_SOURCE], "",
			              rows[i].note);
		any_failed = any_failed || rows[i].failed;
	}
	if (cfg->n_sources == 0)
		(void)fprintf(out, "(no sources configured)\n");
	(void)fprintf(out, "%zu source%s probed, %s\n", cfg->n_sources,
	              cfg->n_sources == 1 ? "" : "s", any_failed ? "some FAILED" : "all ok");
	(void)fflush(out);
	ret = any_failed ? 1 : 0;
	free(rows);
	return ret;
}
