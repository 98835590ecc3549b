/* SPDX-License-Identifier: MIT */
/* GET /status: one self-contained HTML page for humans, with every source's health and last
 * error, and every series with its current value and a sparkline of its last hour. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scalemetrics/api.h"
#include "scalemetrics/buf.h"
#include "scalemetrics/config.h"
#include "scalemetrics/history.h"
#include "scalemetrics/quantity.h"
#include "scalemetrics/series.h"
#include "scalemetrics/store.h"
#include "scalemetrics/telemetry.h"

#include "api-internal.h"

/*
 * The page reads the store (snapshots), the history and the config reload state
 * (telemetry.h), nothing else, and is built anew on every request (never reusable: ages
 * move). Everything that comes from a series, a source's error, the last reload's error or the
 * filter is HTML-escaped (text and attributes alike). Filtering: `?filter=S`
 * keeps the series whose source, metric, labels or object contain S (case-sensitive, no JS
 * needed); the inline script filters the rendered rows as one types, and reads
 * `#filter=S` from the URL on load.
 */

#define SM_API_CT_HTML "text/html; charset=utf-8"

/* Rows rendered at most (the page says when more matched); with the body cap, this bounds
 * one answer to a few MiB whatever the store holds. */
#define MAX_ROWS  5000
#define MAX_BODY  (32u << 20)
#define SPARK_W   120
#define SPARK_H   24
#define SPARK_PAD 2

/* The page is built in a struct sm_buf bounded by MAX_BODY; its failures stick, so the
 * writers below append freely and the handler checks once. */
static bool failed(const struct sm_buf *p)
{
	return p->oom || p->too_big;
}

static void put_n(struct sm_buf *p, const char *s, size_t n)
{
	(void)sm_buf_append(p, s, n);
}

static void put(struct sm_buf *p, const char *s)
{
	put_n(p, s, strlen(s));
}

static void putf(struct sm_buf *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void putf(struct sm_buf *p, const char *fmt, ...)
{
	char small[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	/* Only numbers and static text go through here: they always fit. */
	if (n < 0 || (size_t)n >= sizeof(small)) {
		p->oom = true;
		return;
	}
	put_n(p, small, (size_t)n);
}

/* Text and attribute values alike: & < > " ' become references. */
static void put_esc(struct sm_buf *p, const char *s)
{
	const char *run = s;

	if (!s)
		return;
	for (; *s; s++) {
		const char *ref;

		switch (*s) {
		case '&':
			ref = "&amp;";
			break;
		case '<':
			ref = "&lt;";
			break;
		case '>':
			ref = "&gt;";
			break;
		case '"':
			ref = "&quot;";
			break;
		case '\'':
			ref = "&#39;";
			break;
		default:
			continue;
		}
		put_n(p, run, (size_t)(s - run));
		put(p, ref);
		run = s + 1;
	}
	put_n(p, run, (size_t)(s - run));
}

/* "850ms", "12s", "4m12s", "2h03m"; negative: "0s". */
static void put_age(struct sm_buf *p, int64_t ms)
{
	int64_t s;

	if (ms < 0)
		ms = 0;
	s = ms / 1000;
	if (ms < 1000)
		putf(p, "%" PRId64 "ms", ms);
	else if (s < 60)
		putf(p, "%" PRId64 "s", s);
	else if (s < 3600)
		putf(p, "%" PRId64 "m%02" PRId64 "s", s / 60, s % 60);
	else
		putf(p, "%" PRId64 "h%02" PRId64 "m", s / 3600, s / 60 % 60);
}

/* As the API serves it (sm_api_write_quantity). */
static void put_quantity(struct sm_buf *p, double v)
{
	char buf[SM_QUANTITY_MAX];

	if (isnan(v))
		put(p, "NaN");
	else if (sm_quantity_format(v, buf, sizeof(buf)) >= 0)
		put(p, buf);
	else
		put(p, v < 0 ? "-9223372036854775808" : "9223372036854775807");
}

/* ---- health ---- */

enum health {
	HEALTH_OK,
	HEALTH_STALE,
	HEALTH_FAILING,
	HEALTH_NEVER_RAN,
	HEALTH_MAX,
};

static const char *const health_names[HEALTH_MAX] = {
    [HEALTH_OK] = "ok",
    [HEALTH_STALE] = "stale",
    [HEALTH_FAILING] = "failing",
    [HEALTH_NEVER_RAN] = "never ran",
};

static const char *const health_classes[HEALTH_MAX] = {
    [HEALTH_OK] = "ok",
    [HEALTH_STALE] = "stale",
    [HEALTH_FAILING] = "failing",
    [HEALTH_NEVER_RAN] = "never",
};

/* Failing: the last round failed (its series, if any, are still served until stale).
 * Stale: the last round succeeded, but too long ago. */
static enum health source_health(const struct sm_snapshot *snap, int64_t now_mono_ms)
{
	if (!snap->has_completed)
		return HEALTH_NEVER_RAN;
	if (snap->last_error && snap->last_error[0])
		return HEALTH_FAILING;
	if (sm_snapshot_is_stale(snap, now_mono_ms))
		return HEALTH_STALE;
	return HEALTH_OK;
}

static const char *source_name(const struct sm_snapshot *snap)
{
	return snap->source && snap->source->name ? snap->source->name : "?";
}

/* ---- series ---- */

static void put_labels(struct sm_buf *p, const struct sm_series *s, bool escape)
{
	for (size_t i = 0; i < s->n_labels; i++) {
		if (i)
			put(p, ",");
		if (escape) {
			put_esc(p, s->labels[i].name);
			put(p, "=");
			put_esc(p, s->labels[i].value);
		} else {
			put(p, s->labels[i].name);
			put(p, "=");
			put(p, s->labels[i].value);
		}
	}
}

static void put_object(struct sm_buf *p, const struct sm_series *s, bool escape)
{
	void (*w)(struct sm_buf *, const char *) = escape ? put_esc : put;

	if (!s->object)
		return;
	w(p, s->object->resource);
	put(p, " ");
	if (s->object->namespace) {
		w(p, s->object->namespace);
		put(p, "/");
	}
	w(p, s->object->name);
}

/* What the filter looks at, one field per line, unescaped: source, metric, labels, object.
 * Built in scratch (reset first). */
static int filter_text(struct sm_buf *scratch, const char *source, const struct sm_series *s)
{
	sm_buf_reset(scratch);
	put(scratch, source);
	put(scratch, "\n");
	put(scratch, s->metric);
	put(scratch, "\n");
	put_labels(scratch, s, false);
	put(scratch, "\n");
	put_object(scratch, s, false);
	if (!scratch->data)
		put_n(scratch, "", 0);
	return failed(scratch) ? -ENOMEM : 0;
}

static void put_sparkline(struct sm_buf *p, const struct sm_history_point *pts, size_t n)
{
	double lo = INFINITY, hi = -INFINITY;
	int64_t t0, t1;

	if (n == 0) {
		put(p, "<span class=\"muted\">no history</span>");
		return;
	}
	for (size_t i = 0; i < n; i++) {
		lo = pts[i].value < lo ? pts[i].value : lo;
		hi = pts[i].value > hi ? pts[i].value : hi;
	}
	t0 = pts[0].mono_ms;
	t1 = pts[n - 1].mono_ms;
	putf(p,
	     "<svg class=\"spark\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
	     "data-points=\"%zu\" role=\"img\"><title>",
	     SPARK_W, SPARK_H, SPARK_W, SPARK_H, n);
	putf(p, "min %.6g, max %.6g, last %.6g; %zu point%s over ", lo, hi, pts[n - 1].value, n,
	     n == 1 ? "" : "s");
	put_age(p, t1 - t0);
	put(p, "</title><polyline points=\"");
	for (size_t i = 0; i < n; i++) {
		double x, y;

		/* Time on x (one point: a flat line across), value on y, min at the bottom. */
		x = t1 > t0 ? (double)(pts[i].mono_ms - t0) / (double)(t1 - t0) * SPARK_W
		            : (i == 0 && n == 1 ? 0 : SPARK_W);
		y = hi > lo
		        ? SPARK_PAD + (hi - pts[i].value) / (hi - lo) * (SPARK_H - 2 * SPARK_PAD)
		        : SPARK_H / 2.0;
		putf(p, "%s%.1f,%.1f", i ? " " : "", x, y);
		if (n == 1)
			putf(p, " %d,%.1f", SPARK_W, y);
	}
	put(p, "\"/></svg>");
}

/* ---- the document ---- */

static const char head[] =
    "<!DOCTYPE html>\n"
    "<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<title>scalemetrics status</title>\n"
    "<style>\n"
    "body{font:14px/1.4 system-ui,-apple-system,'Segoe UI',sans-serif;margin:1.5em;"
    "color:#1d2330;background:#fff}\n"
    "h1{font-size:1.4em;margin:0 0 .2em}h2{font-size:1.15em;margin:1.6em 0 .5em}\n"
    "table{border-collapse:collapse;width:100%}\n"
    "th,td{text-align:left;padding:.3em .6em;border-bottom:1px solid #e3e6ec;"
    "vertical-align:middle}\n"
    "th{background:#f4f6f9;font-weight:600;white-space:nowrap}\n"
    "td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}\n"
    "td.err{color:#a1261b;font-family:ui-monospace,monospace;font-size:.9em;"
    "word-break:break-word}\n"
    "code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.92em}\n"
    ".muted{color:#7a8290}\n"
    ".badge{display:inline-block;padding:.05em .55em;border-radius:.8em;font-size:.85em;"
    "font-weight:600;white-space:nowrap}\n"
    ".badge.ok{background:#dcf3e3;color:#136c2e}.badge.stale{background:#fdf0d2;"
    "color:#8a5a00}\n"
    ".badge.failing{background:#fbe0dd;color:#a1261b}.badge.never{background:#eceef2;"
    "color:#555d6b}\n"
    "svg.spark{display:block;color:#2f6fde}svg.spark polyline{fill:none;"
    "stroke:currentColor;stroke-width:1.5;stroke-linejoin:round}\n"
    "form{margin:.4em 0 .8em}input[type=search]{width:28em;max-width:100%;padding:.3em .5em;"
    "font:inherit}\n"
    "tr[hidden]{display:none}\n"
    "</style>\n</head>\n<body>\n";

/* The page runs nothing and loads nothing but its own inline <style> and <script>, named by
 * the SHA-256 of their exact text (between the tags): whatever a source's label value or
 * error message might smuggle past the escaping cannot run. Change either block and its hash
 * here (test_status_page.py recomputes both from the served page). */
static const char csp[] =
    "default-src 'none'; style-src 'sha256-T1v03AaxfFq/DVrRD/CwvgtrCWhOUbAF+/19hctE5mo='; "
    "script-src 'sha256-/5p4Z14B00nqRN/y6EPIYN1GNFUnehMFOOB3OHft+z0='; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'";

static const char script[] =
    "<script>\n"
    "(function () {\n"
    "  var input = document.getElementById('filter');\n"
    "  var rows = document.querySelectorAll('#series tbody tr.series');\n"
    "  var shown = document.getElementById('shown');\n"
    "  function apply() {\n"
    "    var q = input.value, n = 0;\n"
    "    for (var i = 0; i < rows.length; i++) {\n"
    "      var hit = !q || rows[i].getAttribute('data-filter').indexOf(q) >= 0;\n"
    "      rows[i].hidden = !hit;\n"
    "      if (hit) n++;\n"
    "    }\n"
    "    shown.textContent = String(n);\n"
    "  }\n"
    "  function fromHash() {\n"
    "    var m = /^#filter=(.*)$/.exec(location.hash);\n"
    "    if (m) {\n"
    "      try { input.value = decodeURIComponent(m[1]); } catch (e) { input.value = m[1]; }\n"
    "    }\n"
    "    apply();\n"
    "  }\n"
    "  input.addEventListener('input', function () {\n"
    "    var h = input.value ? '#filter=' + encodeURIComponent(input.value) : ' ';\n"
    "    history.replaceState(null, '', h === ' ' ? location.pathname + location.search : h);\n"
    "    apply();\n"
    "  });\n"
    "  window.addEventListener('hashchange', fromHash);\n"
    "  fromHash();\n"
    "})();\n"
    "</script>\n";

static void put_header(struct sm_buf *p, const struct sm_api_call *c)
{
	char ts[32];

	sm_api_format_timestamp(c->req->now_wall_ms, ts, sizeof(ts));
	put(p, head);
	put(p, "<h1>scalemetrics status</h1>\n<p class=\"muted\">version ");
	put_esc(p, c->ctx->version ? c->ctx->version : "?");
	if (c->ctx->git_commit && c->ctx->git_commit[0]) {
		put(p, " (");
		put_esc(p, c->ctx->git_commit);
		put(p, ")");
	}
	put(p, " &middot; generated ");
	put(p, ts);
	put(p, "</p>\n");
}

/* Where the config in use came from and whether the last reload was applied. */
static void put_config(struct sm_buf *p, const struct sm_api_call *c)
{
	const struct sm_config *cfg = sm_store_config(c->ctx->store);
	struct sm_telemetry_reload rl;
	char ts[32];

	if (!c->ctx->telemetry)
		return;
	sm_telemetry_config_status(c->ctx->telemetry, &rl);
	sm_api_format_timestamp(rl.last_wall_ms, ts, sizeof(ts));
	put(p, "<p id=\"config\">config <code>");
	put_esc(p, cfg && cfg->path ? cfg->path : "?");
	put(p, "</code> ");
	if (rl.last_successful) {
		putf(p, "<span class=\"badge ok\">loaded</span> at %s", ts);
	} else {
		putf(p, "<span class=\"badge failing\">last reload failed</span> at %s: <code>",
		     ts);
		put_esc(p, rl.last_error);
		put(p, "</code>; the config loaded before keeps running");
	}
	putf(p, " &middot; reloads: %" PRIu64 " applied, %" PRIu64 " failed</p>\n", rl.attempts[1],
	     rl.attempts[0]);
}

static void put_sources(struct sm_buf *p, const struct sm_api_call *c)
{
	const struct sm_store *st = c->ctx->store;
	size_t n = sm_store_count(st);
	int64_t now = c->req->now_mono_ms;

	put(p, "<h2>Sources</h2>\n<table id=\"sources\">\n<thead><tr><th>Source</th><th>Type</th>"
	       "<th>Health</th><th>Last success</th><th>Rounds ok</th><th>Rounds failed</th>"
	       "<th>Series</th><th>Last error</th></tr></thead>\n<tbody>\n");
	for (size_t i = 0; i < n; i++) {
		struct sm_snapshot *snap = sm_store_acquire(st, i);
		enum health hl = source_health(snap, now);

		put(p, "<tr class=\"source\" data-source=\"");
		put_esc(p, source_name(snap));
		putf(p, "\" data-health=\"%s\"><td>", health_classes[hl]);
		put_esc(p, source_name(snap));
		put(p, "</td><td>");
		put_esc(p, snap->source && snap->source->type ? snap->source->type : "?");
		putf(p, "</td><td class=\"health\"><span class=\"badge %s\">%s</span></td><td>",
		     health_classes[hl], health_names[hl]);
		if (snap->has_succeeded) {
			put_age(p, now - snap->last_success_mono_ms);
			put(p, " ago");
		} else {
			put(p, "<span class=\"muted\">never</span>");
		}
		putf(p,
		     "</td><td class=\"num\">%" PRIu64 "</td><td class=\"num\">%" PRIu64
		     "</td><td class=\"num\">%zu",
		     snap->rounds_ok, snap->rounds_failed, snap->n_series);
		if (snap->series_dropped)
			putf(p, " <span class=\"muted\">(+%zu cut by max_series)</span>",
			     snap->series_dropped);
		put(p, "</td><td class=\"err\">");
		put_esc(p, snap->last_error);
		put(p, "</td></tr>\n");
		sm_snapshot_unref(snap);
	}
	put(p, "</tbody>\n</table>\n");
}

static void put_series_row(struct sm_buf *p, const struct sm_api_call *c, size_t src_idx,
                           const struct sm_snapshot *snap, const struct sm_series *s,
                           const char *filter_attr)
{
	struct sm_history_point pts[SM_HISTORY_POINTS];
	size_t n_pts = sm_history_get(c->ctx->history, sm_store_history_key(c->ctx->store, src_idx),
	                              s, c->req->now_mono_ms, pts, SM_HISTORY_POINTS);

	put(p, "<tr class=\"series\" data-filter=\"");
	put_esc(p, filter_attr);
	put(p, "\"><td>");
	put_esc(p, source_name(snap));
	put(p, "</td><td class=\"mono\">");
	put_esc(p, s->metric);
	put(p, "</td><td class=\"mono\">");
	put_labels(p, s, true);
	put(p, "</td><td class=\"mono\">");
	put_object(p, s, true);
	put(p, "</td><td class=\"num value\">");
	put_quantity(p, s->value);
	put(p, "</td><td class=\"num\">");
	put_age(p, c->req->now_mono_ms - snap->last_success_mono_ms);
	put(p, "</td><td>");
	put_sparkline(p, pts, n_pts);
	put(p, "</td></tr>\n");
}

static void put_series(struct sm_buf *p, const struct sm_api_call *c)
{
	const struct sm_store *st = c->ctx->store;
	const char *filter = c->filter && c->filter[0] ? c->filter : NULL;
	struct sm_buf scratch = {.max = MAX_BODY};
	struct sm_history_stats hs;
	size_t n = sm_store_count(st), total = 0, matched = 0, rows = 0;

	sm_history_stats(c->ctx->history, c->req->now_mono_ms, &hs);
	put(p, "<h2>Series</h2>\n<form method=\"get\" action=\"/status\">"
	       "<input id=\"filter\" name=\"filter\" type=\"search\" value=\"");
	put_esc(p, filter);
	put(p, "\" placeholder=\"filter: source, metric, labels, object\" autocomplete=\"off\"> "
	       "<button type=\"submit\">Filter</button></form>\n");

	for (size_t i = 0; i < n; i++) {
		struct sm_snapshot *snap = sm_store_acquire(st, i);

		total += snap->n_series;
		sm_snapshot_unref(snap);
	}
	put(p, "<table id=\"series\">\n<thead><tr><th>Source</th><th>Metric</th><th>Labels</th>"
	       "<th>Object</th><th>Value</th><th>Age</th><th>Last hour</th></tr></thead>\n"
	       "<tbody>\n");
	for (size_t i = 0; i < n && !failed(p); i++) {
		struct sm_snapshot *snap = sm_store_acquire(st, i);

		for (size_t k = 0; k < snap->n_series && !failed(p); k++) {
			const struct sm_series *s = &snap->series[k];
			int r = filter_text(&scratch, source_name(snap), s);

			if (r < 0) {
				p->oom = true;
				break;
			}
			if (filter && !strstr(scratch.data, filter))
				continue;
			matched++;
			if (rows == MAX_ROWS)
				continue;
			rows++;
			put_series_row(p, c, i, snap, s, scratch.data);
		}
		sm_snapshot_unref(snap);
	}
	free(scratch.data);
	put(p, "</tbody>\n</table>\n<p id=\"summary\" class=\"muted\"><span id=\"shown\">");
	putf(p, "%zu</span> shown; %zu of %zu series match", rows, matched, total);
	if (filter) {
		put(p, " <code>");
		put_esc(p, filter);
		put(p, "</code> (<a href=\"/status\">all</a>)");
	}
	put(p, ".");
	if (matched > rows)
		putf(p, " Only the first %d are listed: narrow the filter to see the others.",
		     MAX_ROWS);
	if (!c->ctx->history)
		put(p, " No history is kept.");
	else
		putf(p,
		     " History: %zu series of at most %zu, %zu KiB; one point per round at first, "
		     "one per minute or so over an hour.",
		     hs.n_series, hs.max_series, (hs.bytes + 1023) / 1024);
	if (hs.capped)
		put(p, " The history cap was reached: series beyond it show no history.");
	put(p, "</p>\n");
}

int sm_api_handle_status_page(const struct sm_api_call *c, struct sm_api_response *ret)
{
	struct sm_buf p = {.max = MAX_BODY};

	put_header(&p, c);
	put_config(&p, c);
	put_sources(&p, c);
	put_series(&p, c);
	put(&p, script);
	put(&p, "</body>\n</html>\n");
	if (failed(&p)) {
		free(p.data);
		return -ENOMEM;
	}
	*ret = (struct sm_api_response){
	    .status = 200,
	    .content_type = SM_API_CT_HTML,
	    .content_security_policy = csp,
	    .body = p.data,
	    .body_len = p.len,
	    .route = c->route->name,
	};
	return 0;
}
