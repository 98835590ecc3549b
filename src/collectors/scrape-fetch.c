/* SPDX-License-Identifier: MIT */
/* The scrape collector's targets and their transfers: one curl easy handle per target, reused
 * across rounds, and the targets of a round fetched on one curl multi handle, at most
 * SM_SCRAPE_MAX_IN_FLIGHT at a time. Why a window rather than all at once: a transfer's
 * timeout runs from when it is added, and with thousands added together curl's own
 * bookkeeping and the parsing of the bodies that arrive first delay the rest past their
 * timeout (bench/README.md, "Collectors at cluster scale"); the window also keeps curl's
 * per-transfer cost flat as the pod count grows. */
#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scalemetrics/buf.h"
#include "scalemetrics/clock.h"
#include "scalemetrics/config.h"
#include "scalemetrics/error.h"

#include "scrape-internal.h"

void sm_scrape_target_free(struct scrape_target *t)
{
	if (!t)
		return;
	if (t->easy)
		curl_easy_cleanup(t->easy);
	free(t->id);
	free(t->url);
	free(t->shown_url);
	sm_scrape_pod_done(&t->pod);
	free(t->body.data);
	sm_scrape_table_done(&t->table);
	free(t);
}

void sm_scrape_target_set_error(struct scrape_target *t, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(t->error, sizeof(t->error), fmt, ap);
	va_end(ap);
	t->ok = false;
}

int sm_scrape_target_new(const struct scrape_fetch_opts *o, const char *id, const char *url,
                         struct scrape_target **ret)
{
	const struct scrape_config *c = o->cfg;
	struct scrape_target *t = calloc(1, sizeof(*t));
	CURL *e;
	int r = -ENOMEM;

	if (!t)
		return -ENOMEM;
	t->id = strdup(id);
	t->url = strdup(url);
	t->shown_url = malloc(strlen(url) + 4);
	t->easy = curl_easy_init();
	if (!t->id || !t->url || !t->shown_url || !t->easy)
		goto out;
	sm_config_url_redact(url, t->shown_url, strlen(url) + 4);
	t->body.max = (size_t)c->max_body_bytes;
	e = t->easy;
	(void)curl_easy_setopt(e, CURLOPT_URL, t->url);
	(void)curl_easy_setopt(e, CURLOPT_PRIVATE, t);
	(void)curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sm_buf_curl_write);
	(void)curl_easy_setopt(e, CURLOPT_WRITEDATA, &t->body);
	(void)curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
	(void)curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	(void)curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	(void)curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)o->timeout_ms);
	(void)curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)o->timeout_ms);
	(void)curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
	(void)curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)c->max_body_bytes);
	(void)curl_easy_setopt(e, CURLOPT_HTTPHEADER, o->headers);
	(void)curl_easy_setopt(e, CURLOPT_USERAGENT, "scalemetrics/" SM_VERSION);
	if (c->ca_file)
		(void)curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file);
	if (c->insecure_skip_verify) {
		(void)curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
		(void)curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	*ret = t;
	t = NULL;
	r = 0;
out:
	sm_scrape_target_free(t);
	return r;
}

/* Whether the transfer brought a body to parse (status 200); otherwise t->error says why. */
static bool target_finish(struct scrape_target *t, CURLcode rc)
{
	long status = 0;

	t->done = true;
	t->t_ms = sm_time_mono_ms();
	if (rc != CURLE_OK) {
		if (t->body.too_big || rc == CURLE_FILESIZE_EXCEEDED)
			sm_scrape_target_set_error(t, "response larger than max_body_bytes (%lld)",
			                           (long long)t->body.max);
		else
			sm_scrape_target_set_error(
			    t, "%s", t->errbuf[0] ? t->errbuf : curl_easy_strerror(rc));
		return false;
	}
	(void)curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200) {
		sm_scrape_target_set_error(t, "HTTP status %ld", status);
		return false;
	}
	return true;
}

/* Hands each finished transfer's body to fn while the others are still in flight; counts
 * the finished ones into *finished. */
static int drain(CURLM *multi, sm_scrape_body_fn fn, void *userdata, size_t *finished)
{
	CURLMsg *m;
	int left;

	for (;;) {
		struct scrape_target *t;
		char *priv = NULL;

		m = curl_multi_info_read(multi, &left);
		if (!m)
			break;
		if (m->msg != CURLMSG_DONE)
			continue;
		(void)curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
		t = (struct scrape_target *)priv;
		(void)curl_multi_remove_handle(multi, m->easy_handle);
		(*finished)++;
		if (!t)
			continue;
		if (target_finish(t, m->data.result)) {
			int r = fn(t, userdata);

			if (r < 0)
				return r;
		}
	}
	return 0;
}

/* Takes every unfinished transfer off the multi handle, so the next round can add it again. */
static void abandon_unfinished(CURLM *multi, struct scrape_target *const *targets, size_t n,
                               const char *why)
{
	for (size_t i = 0; i < n; i++) {
		struct scrape_target *t = targets[i];

		if (!t->done) {
			(void)curl_multi_remove_handle(multi, t->easy);
			sm_scrape_target_set_error(t, "%s", why);
			t->done = true;
		}
	}
}

/* Starts targets (the k-th of the round is targets[(first + k) % n], k from *next) until
 * SM_SCRAPE_MAX_IN_FLIGHT transfers run. After deadline_ms a target is not started any more:
 * it fails, so that a round ends one timeout after its interval at the latest even when
 * every slot is held by a target that does not answer; *first_late is the first of them,
 * where the next round begins, so that no target is left out round after round. */
static void start_more(CURLM *multi, struct scrape_target *const *targets, size_t n, size_t first,
                       size_t *next, size_t *in_flight, int64_t deadline_ms, size_t *first_late)
{
	bool late = sm_time_mono_ms() >= deadline_ms;

	for (; *next < n && *in_flight < SM_SCRAPE_MAX_IN_FLIGHT; (*next)++) {
		size_t i = (first + *next) % n;
		struct scrape_target *t = targets[i];
		CURLMcode mc;

		sm_buf_reset(&t->body); /* the allocation is kept for the next body */
		t->errbuf[0] = '\0';
		t->error[0] = '\0';
		t->done = false;
		t->ok = false;
		if (late) {
			if (*first_late == SIZE_MAX)
				*first_late = i;
			sm_scrape_target_set_error(t,
			                           "not fetched: the round ran past its interval "
			                           "with %zu other targets still to fetch",
			                           n - *next - 1);
			t->done = true;
			continue;
		}
		mc = curl_multi_add_handle(multi, t->easy);
		if (mc != CURLM_OK) {
			sm_scrape_target_set_error(t, "%s", curl_multi_strerror(mc));
			t->done = true;
			continue;
		}
		(*in_flight)++;
	}
}

int sm_scrape_fetch_all(CURLM *multi, struct scrape_target *const *targets, size_t n,
                        int64_t deadline_ms, size_t *first, sm_scrape_body_fn fn, void *userdata,
                        struct sm_error *reterr)
{
	size_t next = 0, in_flight = 0, finished, first_late = SIZE_MAX;
	size_t start = n ? *first % n : 0;
	int running = 0, r;
	CURLMcode mc;

	for (size_t i = 0; i < n; i++)
		targets[i]->done = true; /* until started: abandon_unfinished leaves them alone */
	/* Keep a connection to every target between rounds: curl's default cache holds four
	 * per transfer in the multi handle, which the window makes 256, and each round would
	 * then connect again to all but those. */
	(void)curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)(n < LONG_MAX ? n : LONG_MAX));
	/* The first wave always starts, however long the pod list took. */
	start_more(multi, targets, n, start, &next, &in_flight, INT64_MAX, &first_late);
	for (;;) {
		mc = curl_multi_perform(multi, &running);
		if (mc == CURLM_OK) {
			finished = 0;
			r = drain(multi, fn, userdata, &finished);
			if (r < 0)
				goto fail;
			in_flight -= finished < in_flight ? finished : in_flight;
			if (finished > 0 && next < n) {
				start_more(multi, targets, n, start, &next, &in_flight, deadline_ms,
				           &first_late);
				continue; /* let curl start what was added before waiting */
			}
			if (running == 0 && next == n)
				break;
			mc = curl_multi_poll(multi, NULL, 0, 1000, NULL);
		}
		if (mc != CURLM_OK) {
			sm_error_set(reterr, "curl: %s", curl_multi_strerror(mc));
			r = mc == CURLM_OUT_OF_MEMORY ? -ENOMEM : -EPROTO;
			goto fail;
		}
	}
	abandon_unfinished(multi, targets, n, "transfer did not complete");
	if (first_late != SIZE_MAX)
		*first = first_late;
	return 0;
fail:
	abandon_unfinished(multi, targets, n, "round aborted");
	for (; next < n; next++)
		sm_scrape_target_set_error(targets[(start + next) % n], "round aborted");
	return r;
}
