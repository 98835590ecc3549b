/* SPDX-License-Identifier: MIT */
/* GET /metrics: the server's own metrics in the Prometheus text exposition format 0.0.4,
 * from the telemetry counters (requests, latency, fallbacks, auth) and the store's
 * per-source snapshots (series, rounds, durations, sample age, staleness). */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "scalemetrics/api.h"
#include "scalemetrics/config.h"
#include "scalemetrics/store.h"
#include "scalemetrics/telemetry.h"

#include "api-internal.h"

/* A label value: backslash, double quote and line feed escaped (format 0.0.4). */
static void put_label_value(FILE *f, const char *s)
{
	for (; s && *s; s++) {
		if (*s == '\\')
			(void)fputs("\\\\", f);
		else if (*s == '"')
			(void)fputs("\\\"", f);
		else if (*s == '\n')
			(void)fputs("\\n", f);
		else
			(void)fputc(*s, f);
	}
}

/* # HELP and # TYPE; help text has backslash and line feed escaped. */
static void put_header(FILE *f, const char *name, const char *type, const char *help)
{
	(void)fprintf(f, "# HELP %s ", name);
	for (const char *s = help; *s; s++) {
		if (*s == '\\')
			(void)fputs("\\\\", f);
		else if (*s == '\n')
			(void)fputs("\\n", f);
		else
			(void)fputc(*s, f);
	}
	(void)fprintf(f, "\n# TYPE %s %s\n", name, type);
}

/* A non-negative amount of 10^-digits units as exact decimal seconds: no float rounding,
 * so 1500 us is "0.001500" (digits 6) and 1500 ms is "1.500" (digits 3). */
static void put_seconds(FILE *f, int64_t v, int digits, int64_t per_second)
{
	if (v < 0)
		v = 0;
	(void)fprintf(f, "%" PRId64 ".%0*" PRId64, v / per_second, digits, v % per_second);
}

static void put_source_label(FILE *f, const struct sm_snapshot *snap)
{
	(void)fputs("{source=\"", f);
	put_label_value(f, snap->source && snap->source->name ? snap->source->name : "");
	(void)fputc('"', f);
}

static void render_build(FILE *f, const char *version, const char *git_commit)
{
	put_header(f, "scalemetrics_build_info", "gauge",
	           "Always 1; the labels say which build of scalemetrics is running.");
	(void)fputs("scalemetrics_build_info{version=\"", f);
	put_label_value(f, version ? version : "");
	(void)fputs("\",commit=\"", f);
	put_label_value(f, git_commit ? git_commit : "");
	(void)fputs("\"} 1\n", f);
}

static void render_requests(FILE *f, const struct sm_telemetry *t)
{
	put_header(f, "scalemetrics_http_requests_total", "counter",
	           "HTTP requests answered, by API group (\"\" outside the metrics APIs), the "
	           "route that answered (\"other\": none did) and status code.");
	for (int g = 0; g < SM_TELEMETRY_GROUP_MAX; g++) {
		for (int rt = 0; rt < SM_TELEMETRY_ROUTE_MAX; rt++) {
			for (int code = 0; code < SM_TELEMETRY_CODES; code++) {
				uint64_t n = sm_telemetry_requests(t, g, rt, code);

				if (n == 0)
					continue;
				(void)fprintf(f,
				              "scalemetrics_http_requests_total{group=\"%s\","
				              "route=\"%s\",code=\"%d\"} %" PRIu64 "\n",
				              sm_telemetry_group_to_string(g),
				              sm_telemetry_route_to_string(rt), code, n);
			}
		}
	}
}

static void render_latency(FILE *f, const struct sm_telemetry *t)
{
	static const char name[] = "scalemetrics_http_request_duration_seconds";

	put_header(f, name, "histogram",
	           "Time from the request line to the response, access check included, by "
	           "route.");
	for (int rt = 0; rt < SM_TELEMETRY_ROUTE_MAX; rt++) {
		const char *route = sm_telemetry_route_to_string(rt);
		uint64_t b[SM_TELEMETRY_BUCKETS + 1];
		uint64_t sum_us, cum = 0;

		sm_telemetry_latency(t, rt, b, &sum_us);
		for (size_t i = 0; i <= SM_TELEMETRY_BUCKETS; i++)
			cum += b[i];
		if (cum == 0)
			continue;
		cum = 0;
		for (size_t i = 0; i <= SM_TELEMETRY_BUCKETS; i++) {
			cum += b[i];
			(void)fprintf(f, "%s_bucket{route=\"%s\",le=\"%s\"} %" PRIu64 "\n", name,
			              route, sm_telemetry_bucket_le(i), cum);
		}
		(void)fprintf(f, "%s_sum{route=\"%s\"} ", name, route);
		put_seconds(f, (int64_t)(sum_us > INT64_MAX ? INT64_MAX : sum_us), 6, 1000000);
		(void)fprintf(f, "\n%s_count{route=\"%s\"} %" PRIu64 "\n", name, route, cum);
	}
}

static void render_auth(FILE *f, const struct sm_telemetry *t)
{
	put_header(f, "scalemetrics_fallbacks_served_total", "counter",
	           "Metric values served from a rule's fallback because its source was stale, "
	           "by API group.");
	for (int g = SM_TELEMETRY_GROUP_NONE + 1; g < SM_TELEMETRY_GROUP_MAX; g++)
		(void)fprintf(f, "scalemetrics_fallbacks_served_total{group=\"%s\"} %" PRIu64 "\n",
		              sm_telemetry_group_to_string(g), sm_telemetry_fallbacks(t, g));

	put_header(f, "scalemetrics_auth_decisions_total", "counter",
	           "Access checks of requests (server.auth.mode delegated; not the health "
	           "endpoints), by outcome: allowed, denied (403), unauthenticated (401), error "
	           "(no decision could be made).");
	for (int d = 0; d < SM_TELEMETRY_AUTH_DECISION_MAX; d++)
		(void)fprintf(f, "scalemetrics_auth_decisions_total{decision=\"%s\"} %" PRIu64 "\n",
		              sm_telemetry_auth_decision_to_string(d),
		              sm_telemetry_auth_decisions(t, d));

	put_header(f, "scalemetrics_auth_cache_lookups_total", "counter",
	           "Lookups in the TokenReview and SubjectAccessReview caches, by result (a miss "
	           "asks the Kubernetes API).");
	for (int c = 0; c < SM_TELEMETRY_CACHE_MAX; c++) {
		for (int hit = 1; hit >= 0; hit--)
			(void)fprintf(
			    f,
			    "scalemetrics_auth_cache_lookups_total{cache=\"%s\",result=\"%s\"} "
			    "%" PRIu64 "\n",
			    sm_telemetry_cache_to_string(c), hit ? "hit" : "miss",
			    sm_telemetry_auth_cache_lookups(t, c, hit));
	}

	put_header(f, "scalemetrics_answer_cache_lookups_total", "counter",
	           "Answers that can be reused (metric lists and discovery while no source "
	           "changed), by result: hit (copied from the answer cache) or miss (built).");
	for (int hit = 1; hit >= 0; hit--)
		(void)fprintf(
		    f, "scalemetrics_answer_cache_lookups_total{result=\"%s\"} %" PRIu64 "\n",
		    hit ? "hit" : "miss", sm_telemetry_answer_cache_lookups(t, hit));
}

static void render_sources(FILE *f, struct sm_snapshot *const *snaps, size_t n, int64_t now_mono_ms)
{
	put_header(f, "scalemetrics_source_series", "gauge",
	           "Series the source's last successful round produced.");
	for (size_t i = 0; i < n; i++) {
		(void)fputs("scalemetrics_source_series", f);
		put_source_label(f, snaps[i]);
		(void)fprintf(f, "} %zu\n", snaps[i]->n_series);
	}

	put_header(f, "scalemetrics_source_series_dropped", "gauge",
	           "Series cut by max_series in the source's last successful round.");
	for (size_t i = 0; i < n; i++) {
		(void)fputs("scalemetrics_source_series_dropped", f);
		put_source_label(f, snaps[i]);
		(void)fprintf(f, "} %zu\n", snaps[i]->series_dropped);
	}

	put_header(f, "scalemetrics_source_rounds_total", "counter",
	           "Collection rounds of the source, by result (success or failure).");
	for (size_t i = 0; i < n; i++) {
		(void)fputs("scalemetrics_source_rounds_total", f);
		put_source_label(f, snaps[i]);
		(void)fprintf(f, ",result=\"success\"} %" PRIu64 "\n", snaps[i]->rounds_ok);
		(void)fputs("scalemetrics_source_rounds_total", f);
		put_source_label(f, snaps[i]);
		(void)fprintf(f, ",result=\"failure\"} %" PRIu64 "\n", snaps[i]->rounds_failed);
	}

	put_header(f, "scalemetrics_source_last_round_duration_seconds", "gauge",
	           "How long the source's last round took, success or failure (absent before "
	           "the first round).");
	for (size_t i = 0; i < n; i++) {
		if (!snaps[i]->has_completed)
			continue;
		(void)fputs("scalemetrics_source_last_round_duration_seconds", f);
		put_source_label(f, snaps[i]);
		(void)fputs("} ", f);
		put_seconds(f, snaps[i]->last_round_us, 6, 1000000);
		(void)fputc('\n', f);
	}

	put_header(f, "scalemetrics_source_last_success_timestamp_seconds", "gauge",
	           "Unix time of the source's last successful round (absent until one).");
	for (size_t i = 0; i < n; i++) {
		if (!snaps[i]->has_succeeded)
			continue;
		(void)fputs("scalemetrics_source_last_success_timestamp_seconds", f);
		put_source_label(f, snaps[i]);
		(void)fputs("} ", f);
		put_seconds(f, snaps[i]->last_success_wall_ms, 3, 1000);
		(void)fputc('\n', f);
	}

	put_header(f, "scalemetrics_source_sample_age_seconds", "gauge",
	           "Age of the source's samples: seconds since its last successful round "
	           "(absent until one).");
	for (size_t i = 0; i < n; i++) {
		if (!snaps[i]->has_succeeded)
			continue;
		(void)fputs("scalemetrics_source_sample_age_seconds", f);
		put_source_label(f, snaps[i]);
		(void)fputs("} ", f);
		put_seconds(f, now_mono_ms - snaps[i]->last_success_mono_ms, 3, 1000);
		(void)fputc('\n', f);
	}

	put_header(f, "scalemetrics_source_stale", "gauge",
	           "1 when the source's samples are older than its max_age or it never "
	           "succeeded: its metrics answer 503, or their fallback.");
	for (size_t i = 0; i < n; i++) {
		(void)fputs("scalemetrics_source_stale", f);
		put_source_label(f, snaps[i]);
		(void)fprintf(f, "} %d\n", sm_snapshot_is_stale(snaps[i], now_mono_ms) ? 1 : 0);
	}
}

static void render_config(FILE *f, const struct sm_telemetry *t)
{
	struct sm_telemetry_reload rl;

	sm_telemetry_config_status(t, &rl);
	put_header(f, "scalemetrics_config_last_reload_successful", "gauge",
	           "1 when the last config reload was applied (and before any), 0 when it was "
	           "refused: the config in use is then older than the file.");
	(void)fprintf(f, "scalemetrics_config_last_reload_successful %d\n",
	              rl.last_successful ? 1 : 0);
	put_header(f, "scalemetrics_config_last_reload_timestamp_seconds", "gauge",
	           "When the last config reload was tried, or the config loaded at start, in "
	           "seconds since the epoch.");
	(void)fputs("scalemetrics_config_last_reload_timestamp_seconds ", f);
	put_seconds(f, rl.last_wall_ms, 3, 1000);
	(void)fputc('\n', f);
	put_header(f, "scalemetrics_config_reloads_total", "counter",
	           "Config reloads (SIGHUP or a change of the file) by result: success (applied) "
	           "or failure (refused, the running config kept).");
	(void)fprintf(f, "scalemetrics_config_reloads_total{result=\"success\"} %" PRIu64 "\n",
	              rl.attempts[1]);
	(void)fprintf(f, "scalemetrics_config_reloads_total{result=\"failure\"} %" PRIu64 "\n",
	              rl.attempts[0]);
}

int sm_api_metrics_render(const struct sm_telemetry *t, const struct sm_store *st,
                          int64_t now_mono_ms, const char *version, const char *git_commit,
                          char **ret_body, size_t *ret_len)
{
	struct sm_snapshot **snaps = NULL;
	size_t n = sm_store_count(st);
	char *body = NULL;
	size_t len = 0;
	FILE *f = NULL;
	int r = -ENOMEM;

	/* One snapshot per source for the whole document, so its families agree. */
	if (n > 0) {
		snaps = calloc(n, sizeof(*snaps));
		if (!snaps)
			goto out;
		for (size_t i = 0; i < n; i++)
			snaps[i] = sm_store_acquire(st, i);
	}
	f = open_memstream(&body, &len);
	if (!f)
		goto out;
	render_build(f, version, git_commit);
	render_requests(f, t);
	render_latency(f, t);
	render_auth(f, t);
	render_config(f, t);
	render_sources(f, snaps, n, now_mono_ms);
	/* A failed write (out of memory) sticks in the stream's error flag. */
	if (ferror(f)) {
		(void)fclose(f);
		f = NULL;
		goto out;
	}
	if (fclose(f) != 0) {
		f = NULL;
		goto out;
	}
	f = NULL;
	*ret_body = body;
	*ret_len = len;
	body = NULL;
	r = 0;
out:
	if (f)
		(void)fclose(f);
	free(body);
	for (size_t i = 0; snaps && i < n; i++)
		sm_snapshot_unref(snaps[i]);
	free(snaps);
	return r;
}

int sm_api_handle_metrics(const struct sm_api_call *c, struct sm_api_response *ret)
{
	char *body = NULL;
	size_t len = 0;
	int r;

	/* Without telemetry (a server started without it) the endpoint does not exist. */
	if (!c->ctx->telemetry)
		return sm_api_status(404, "NotFound",
		                     "the server could not find the requested resource", ret);
	r = sm_api_metrics_render(c->ctx->telemetry, c->ctx->store, c->req->now_mono_ms,
	                          c->ctx->version, c->ctx->git_commit, &body, &len);
	if (r < 0)
		return r;
	*ret = (struct sm_api_response){
	    .status = 200,
	    .content_type = SM_API_CT_PROMETHEUS,
	    .body = body,
	    .body_len = len,
	    .route = c->route->name,
	};
	return 0;
}
