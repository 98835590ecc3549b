/* SPDX-License-Identifier: MIT */
/* Forwarded requests sent to the upstream adapters, and the upstreams' resource lists kept
 * current (upstream.h; the decisions are in forward.h).
 *
 * Design:
 * - Threads: WORKERS worker threads take jobs from one FIFO queue of at most QUEUE_MAX jobs
 *   (a full queue is a 503 at once, in the HTTP thread); each worker has its own curl easy
 *   handle, so its connections to the upstreams stay open between requests (keep-alive).
 *   MHD's threads never wait on an upstream: the HTTP layer suspends the connection and a
 *   worker's done() resumes it. One refresher thread fetches each upstream's
 *   /apis/<group>/<version> every REFRESH_MS, and sooner (at most every REFRESH_MIN_MS) when
 *   a request names a metric its last list lacked.
 * - Bounds: each transfer ends after the entry's `timeout`; a job that waited that long in
 *   the queue is answered 503 without being sent; bodies over MAX_BODY end the transfer.
 * - Locks: `lock` guards the queue and `stopping`. Each upstream's token has its own mutex
 *   (workers read it; the file is re-read when its identity changes). The log state is
 *   atomic (workers) or the refresher's own.
 * - Stop: queued jobs are answered at once, transfers in flight are aborted through curl's
 *   progress callback, then the threads are joined (sm_upstream_stop). The struct outlives
 *   the stop, so HTTP threads still running may submit (and get -ESHUTDOWN) until
 *   sm_upstream_free. */
#include "scalemetrics/upstream.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "scalemetrics/api.h"
#include "scalemetrics/buf.h"
#include "scalemetrics/clock.h"
#include "scalemetrics/config.h"
#include "scalemetrics/file.h"
#include "scalemetrics/forward.h"
#include "scalemetrics/log.h"
#include "scalemetrics/store.h"

#define LOG_CTX        "forward"
#define WORKERS        4
#define QUEUE_MAX      64
#define MAX_BODY       (8u << 20)
#define TOKEN_MAX      16384
#define REFRESH_MS     60000
#define REFRESH_MIN_MS 5000
#define TICK_MS        1000
#define CA_CACHE_S     60
/* Name clashes remembered (each is logged once). */
#define CLASHES_MAX 1024
#define USER_AGENT  "scalemetrics/" SM_VERSION " (forward)"

struct job {
	size_t upstream;
	char *url;
	int64_t queued_ms;
	sm_upstream_done_fn done;
	void *userdata;
	struct job *next;
};

struct target {
	const struct sm_forward_config *cfg;
	const char *name; /* borrowed from the forward table: the URL, userinfo hidden */
	pthread_mutex_t token_lock;
	bool token_lock_init;
	struct sm_token_file token; /* under token_lock */
	atomic_bool failing;        /* the last forwarded request failed (logged when it turned) */
	/* Refresher only. */
	int64_t next_refresh_ms, last_refresh_ms;
	bool discovery_failing;
	char **clashes;
	size_t n_clashes;
};

struct sm_upstream {
	struct sm_forward *fwd;
	const struct sm_api_context *api;
	struct target *targets;
	size_t n;
	pthread_mutex_t lock;
	pthread_cond_t cond;         /* jobs queued, or stopping */
	pthread_cond_t refresh_cond; /* stopping (the refresher's sleep) */
	bool sync_init;
	bool stopping;
	atomic_bool abort; /* transfers in flight end */
	struct job *head, *tail;
	size_t queued;
	pthread_t workers[WORKERS];
	unsigned n_workers;
	pthread_t refresher;
	bool refresher_started;
};

static int on_progress(void *clientp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
	struct sm_upstream *u = clientp;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return atomic_load(&u->abort) ? 1 : 0;
}

static void secret_free(char *s)
{
	if (s)
		memset(s, 0, strlen(s));
	free(s);
}

/* "Authorization: Bearer ..." from the token file, re-read when the file changed; *ret NULL
 * without a token_file. -EACCES with why in reterr, -ENOMEM. */
static int auth_header(struct target *t, char **ret, struct sm_error *reterr)
{
	struct sm_error e = {0};
	size_t len;
	int r;

	*ret = NULL;
	if (!t->cfg->token_file)
		return 0;
	(void)pthread_mutex_lock(&t->token_lock);
	t->token.path = t->cfg->token_file;
	r = sm_token_file_refresh(&t->token, TOKEN_MAX, &e);
	if (r < 0) {
		sm_error_set(reterr, "cannot read token_file '%s': %s", t->token.path, e.message);
		r = r == -ENOMEM ? r : -EACCES;
		goto out;
	}
	if (!*t->token.value)
		goto out;
	len = strlen(t->token.value) + 32;
	*ret = malloc(len);
	if (!*ret) {
		r = -ENOMEM;
		goto out;
	}
	(void)snprintf(*ret, len, "Authorization: Bearer %s", t->token.value);
out:
	(void)pthread_mutex_unlock(&t->token_lock);
	return r;
}

/* One GET of url from the upstream t on handle h. 0 with the status, body (owned) and
 * Content-Type (owned, may be NULL); or a negative errno with why in reterr. */
static int get(struct sm_upstream *u, struct target *t, CURL *h, const char *url, long *ret_status,
               struct sm_buf *ret_body, char **ret_ct, struct sm_error *reterr)
{
	struct curl_slist *headers = NULL, *l;
	char errbuf[CURL_ERROR_SIZE] = "";
	char *auth = NULL, *ct = NULL;
	struct sm_buf b = {.max = MAX_BODY};
	CURLcode rc;
	int r;

	r = auth_header(t, &auth, reterr);
	if (r < 0)
		return r;
	r = -ENOMEM;
	/* Our checks read JSON; the requester accepts it (the router refused it otherwise). */
	l = curl_slist_append(headers, "Accept: application/json");
	if (!l)
		goto out;
	headers = l;
	if (auth) {
		l = curl_slist_append(headers, auth);
		if (!l)
			goto out;
		headers = l;
	}
	curl_easy_reset(h);
	(void)curl_easy_setopt(h, CURLOPT_URL, url);
	(void)curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	(void)curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	(void)curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
	(void)curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)t->cfg->timeout_ms);
	(void)curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)t->cfg->timeout_ms);
	(void)curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	(void)curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
	(void)curl_easy_setopt(h, CURLOPT_USERAGENT, USER_AGENT);
	(void)curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, sm_buf_curl_write);
	(void)curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
	(void)curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	(void)curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)MAX_BODY);
	(void)curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	(void)curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	(void)curl_easy_setopt(h, CURLOPT_XFERINFODATA, u);
	if (t->cfg->ca_file) {
		/* The configured CA is the only trust, as for the Kubernetes API. */
		(void)curl_easy_setopt(h, CURLOPT_CAINFO, t->cfg->ca_file);
		(void)curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
		/* A rotated CA file is read again within a minute (libcurl keeps it a day). */
		(void)curl_easy_setopt(h, CURLOPT_CA_CACHE_TIMEOUT, (long)CA_CACHE_S);
	}
	if (t->cfg->insecure_skip_tls_verify) {
		(void)curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		(void)curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	rc = curl_easy_perform(h);
	if (rc != CURLE_OK) {
		if (b.too_big || rc == CURLE_FILESIZE_EXCEEDED) {
			sm_error_set(reterr, "its answer is larger than %u MiB", MAX_BODY >> 20);
			r = -E2BIG;
		} else if (rc == CURLE_OPERATION_TIMEDOUT) {
			sm_error_set(reterr, "no answer within %" PRId64 "ms (%s)",
			             t->cfg->timeout_ms, *errbuf ? errbuf : curl_easy_strerror(rc));
			r = -ETIMEDOUT;
		} else if (rc == CURLE_ABORTED_BY_CALLBACK) {
			sm_error_set(reterr, "this server is shutting down");
			r = -ESHUTDOWN;
		} else {
			sm_error_set(reterr, "%s", *errbuf ? errbuf : curl_easy_strerror(rc));
			r = rc == CURLE_OUT_OF_MEMORY ? -ENOMEM : -EPROTO;
		}
		goto out;
	}
	(void)curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, ret_status);
	{
		char *type = NULL;

		(void)curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &type);
		if (type) {
			ct = strdup(type);
			if (!ct)
				goto out;
		}
	}
	*ret_body = b;
	b = (struct sm_buf){.max = MAX_BODY};
	*ret_ct = ct;
	ct = NULL;
	r = 0;
out:
	/* The handle keeps its connections, not pointers into what is freed here. */
	curl_easy_reset(h);
	curl_slist_free_all(headers);
	secret_free(auth);
	free(ct);
	free(b.data);
	return r;
}

static void log_state(struct target *t, bool failed, const char *why)
{
	if (failed && !atomic_exchange(&t->failing, true))
		sm_log_warn(LOG_CTX,
		            "forwarding to '%s' failed: %s; its metrics are answered 503 until it "
		            "answers again",
		            t->name, why);
	else if (!failed && atomic_exchange(&t->failing, false))
		sm_log_info(LOG_CTX, "'%s' answers forwarded requests again", t->name);
}

/* Sends one job and hands its answer to done(). */
static void run_job(struct sm_upstream *u, CURL *h, struct job *j)
{
	struct target *t = &u->targets[j->upstream];
	struct sm_api_response resp = {0};
	struct sm_error err = {0};
	struct sm_buf b = {.max = MAX_BODY};
	char *ct = NULL;
	int64_t waited = sm_time_mono_ms() - j->queued_ms;
	long status = 0;
	int r;

	if (waited >= t->cfg->timeout_ms) {
		sm_error_set(&err,
		             "not sent: it waited %" PRId64 "ms behind other forwarded requests "
		             "(%d at a time)",
		             waited, WORKERS);
		r = -ETIMEDOUT;
	} else if (!h) {
		sm_error_set(&err, "out of memory");
		r = -ENOMEM;
	} else {
		r = get(u, t, h, j->url, &status, &b, &ct, &err);
	}
	if (r == 0)
		r = sm_forward_check_answer(u->fwd, j->upstream, status, b.data, b.len, &err);
	if (r == 0) {
		resp = (struct sm_api_response){
		    .status = (int)status,
		    .content_type = "application/json",
		    .body = b.data,
		    .body_len = b.len,
		};
		b.data = NULL;
		if (ct)
			resp.content_type = ct;
	} else {
		free(ct);
		ct = NULL;
		if (sm_forward_unavailable(u->fwd, j->upstream, err.message, &resp) < 0)
			resp.content_type = NULL;
	}
	if (r != -ESHUTDOWN)
		log_state(t, r != 0, err.message);
	free(b.data);
	j->done(j->userdata, &resp, ct);
}

static void job_free(struct job *j)
{
	if (!j)
		return;
	free(j->url);
	free(j);
}

static void *worker(void *arg)
{
	struct sm_upstream *u = arg;
	CURL *h = curl_easy_init(); /* NULL: every job is answered 503 */

	for (;;) {
		struct job *j;

		(void)pthread_mutex_lock(&u->lock);
		while (!u->head && !u->stopping)
			(void)pthread_cond_wait(&u->cond, &u->lock);
		j = u->head;
		if (j) {
			u->head = j->next;
			if (!u->head)
				u->tail = NULL;
			u->queued--;
		}
		(void)pthread_mutex_unlock(&u->lock);
		if (!j)
			break;
		run_job(u, h, j);
		job_free(j);
	}
	if (h)
		curl_easy_cleanup(h);
	return NULL;
}

int sm_upstream_submit(struct sm_upstream *u, const struct sm_upstream_request *req,
                       sm_upstream_queued_fn queued, sm_upstream_done_fn done, void *userdata)
{
	const struct sm_forward_config *cfg = u->targets[req->upstream].cfg;
	struct job *j = calloc(1, sizeof(*j));
	size_t len;
	int r = 0;

	if (!j)
		return -ENOMEM;
	len = strlen(cfg->url) + strlen(req->path) + (req->query ? strlen(req->query) + 1 : 0) + 1;
	j->url = malloc(len);
	if (!j->url) {
		free(j);
		return -ENOMEM;
	}
	(void)snprintf(j->url, len, "%s%s%s%s", cfg->url, req->path, req->query ? "?" : "",
	               req->query ? req->query : "");
	j->upstream = req->upstream;
	j->done = done;
	j->userdata = userdata;
	j->queued_ms = sm_time_mono_ms();
	(void)pthread_mutex_lock(&u->lock);
	if (u->stopping) {
		r = -ESHUTDOWN;
	} else if (u->queued >= QUEUE_MAX) {
		r = -EAGAIN;
	} else {
		queued(userdata);
		if (u->tail)
			u->tail->next = j;
		else
			u->head = j;
		u->tail = j;
		u->queued++;
		(void)pthread_cond_signal(&u->cond);
		j = NULL;
	}
	(void)pthread_mutex_unlock(&u->lock);
	job_free(j);
	return r;
}

/* ---- discovery ---- */

static void log_clash(const char *metric, void *userdata)
{
	struct target *t = userdata;
	char **v;

	for (size_t i = 0; i < t->n_clashes; i++)
		if (strcmp(t->clashes[i], metric) == 0)
			return;
	sm_log_warn(LOG_CTX,
	            "metric '%s' is served by a source of ours and by '%s': ours answers it and "
	            "discovery lists ours",
	            metric, t->name);
	if (t->n_clashes == CLASHES_MAX)
		return;
	v = realloc(t->clashes, (t->n_clashes + 1) * sizeof(*v));
	if (!v)
		return;
	t->clashes = v;
	t->clashes[t->n_clashes] = strdup(metric);
	if (t->clashes[t->n_clashes])
		t->n_clashes++;
}

static void log_clashes(struct sm_upstream *u, size_t i)
{
	const struct sm_api_context *api = u->api;
	struct sm_store *held = NULL;
	const struct sm_store *st = api ? api->store : NULL;

	if (api && api->live) {
		held = sm_store_live_acquire(api->live);
		st = held;
	}
	sm_forward_for_each_clash(u->fwd, i, sm_store_config(st), log_clash, &u->targets[i]);
	sm_store_unref(held);
}

/* Fetches every version's resource list of upstream i. */
static void refresh(struct sm_upstream *u, CURL *h, size_t i)
{
	struct target *t = &u->targets[i];
	const char *group = sm_forward_group_to_string(t->cfg->group);
	char why[512] = "";
	bool failed = false;

	for (size_t k = 0; !failed; k++) {
		const char *version = sm_forward_version(u->fwd, i, k);
		struct sm_error err = {0};
		struct sm_buf b = {.max = MAX_BODY};
		char *ct = NULL;
		long status = 0;
		char url[2048];
		int r;

		if (!version)
			break;
		(void)snprintf(url, sizeof(url), "%s/apis/%s/%s", t->cfg->url, group, version);
		r = h ? get(u, t, h, url, &status, &b, &ct, &err) : -ENOMEM;
		if (r == -ESHUTDOWN)
			return;
		if (r == 0 && status == 404) {
			sm_forward_clear_resources(u->fwd, i, version);
		} else if (r == 0 && status == 200) {
			r = sm_forward_set_resources(u->fwd, i, version, b.data, b.len, &err);
		} else if (r == 0) {
			sm_error_set(&err, "GET /apis/%s/%s: HTTP %ld", group, version, status);
			r = -EPROTO;
		}
		if (r < 0) {
			failed = true;
			(void)snprintf(why, sizeof(why), "%s",
			               r == -ENOMEM && !err.message[0] ? "out of memory"
			                                               : err.message);
		}
		free(ct);
		free(b.data);
	}
	if (failed && !t->discovery_failing)
		sm_log_warn(LOG_CTX,
		            "cannot read the metrics '%s' serves: %s; discovery keeps its last "
		            "list, retrying in %ds",
		            t->name, why, REFRESH_MS / 1000);
	else if (!failed && t->discovery_failing)
		sm_log_info(LOG_CTX, "read the metrics '%s' serves again", t->name);
	t->discovery_failing = failed;
	if (!failed)
		log_clashes(u, i);
}

static void *refresher(void *arg)
{
	struct sm_upstream *u = arg;
	CURL *h = curl_easy_init();

	for (;;) {
		struct timespec deadline;
		bool stop;
		int64_t now;

		(void)pthread_mutex_lock(&u->lock);
		deadline = sm_time_mono_deadline(TICK_MS);
		while (!u->stopping &&
		       pthread_cond_timedwait(&u->refresh_cond, &u->lock, &deadline) != ETIMEDOUT)
			;
		stop = u->stopping;
		(void)pthread_mutex_unlock(&u->lock);
		if (stop)
			break;
		now = sm_time_mono_ms();
		for (size_t i = 0; i < u->n; i++) {
			struct target *t = &u->targets[i];
			bool due = now >= t->next_refresh_ms ||
			           (now >= t->last_refresh_ms + REFRESH_MIN_MS &&
			            sm_forward_take_refresh(u->fwd, i));

			if (!due)
				continue;
			refresh(u, h, i);
			t->last_refresh_ms = sm_time_mono_ms();
			t->next_refresh_ms = t->last_refresh_ms + REFRESH_MS;
		}
	}
	if (h)
		curl_easy_cleanup(h);
	return NULL;
}

/* ---- start / stop ---- */

static int check_file(const char *what, const char *file, const char *name, struct sm_error *reterr)
{
	FILE *f = fopen(file, "re");

	if (!f) {
		sm_error_set(reterr, "forward to '%s': cannot read %s '%s': %s", name, what, file,
		             strerror(errno));
		return -EINVAL;
	}
	(void)fclose(f);
	return 0;
}

int sm_upstream_start(struct sm_forward *fwd, const struct sm_api_context *api,
                      struct sm_upstream **ret, struct sm_error *reterr)
{
	struct sm_upstream *u = calloc(1, sizeof(*u));
	const struct sm_forward_list *list = sm_forward_list(fwd);
	pthread_condattr_t ca;
	int r = -ENOMEM;

	if (!u) {
		sm_error_set(reterr, "out of memory");
		return -ENOMEM;
	}
	/* Here, before any thread of ours uses curl (it is not thread-safe in every build). */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		free(u);
		sm_error_set(reterr, "cannot initialise libcurl");
		return -ENOMEM;
	}
	u->fwd = fwd;
	u->api = api;
	atomic_init(&u->abort, false);
	u->targets = calloc(list->n ? list->n : 1, sizeof(*u->targets));
	if (!u->targets)
		goto fail;
	for (size_t i = 0; i < list->n; i++) {
		struct target *t = &u->targets[i];

		t->cfg = &list->v[i];
		t->name = sm_forward_name(fwd, i);
		atomic_init(&t->failing, false);
		if (pthread_mutex_init(&t->token_lock, NULL) != 0)
			goto fail;
		t->token_lock_init = true;
		u->n++;
		r = t->cfg->ca_file ? check_file("ca_file", t->cfg->ca_file, t->name, reterr) : 0;
		if (r == 0 && t->cfg->token_file)
			r = check_file("token_file", t->cfg->token_file, t->name, reterr);
		if (r < 0)
			goto fail;
		r = -ENOMEM;
	}
	if (pthread_condattr_init(&ca) != 0)
		goto fail;
	(void)pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	if (pthread_mutex_init(&u->lock, NULL) != 0) {
		(void)pthread_condattr_destroy(&ca);
		goto fail;
	}
	if (pthread_cond_init(&u->cond, NULL) != 0 ||
	    pthread_cond_init(&u->refresh_cond, &ca) != 0) {
		(void)pthread_condattr_destroy(&ca);
		(void)pthread_mutex_destroy(&u->lock);
		goto fail;
	}
	(void)pthread_condattr_destroy(&ca);
	u->sync_init = true;
	for (unsigned i = 0; i < WORKERS; i++) {
		r = -pthread_create(&u->workers[i], NULL, worker, u);
		if (r < 0) {
			sm_error_set(reterr, "cannot start the forward workers: %s", strerror(-r));
			goto fail;
		}
		u->n_workers++;
	}
	r = -pthread_create(&u->refresher, NULL, refresher, u);
	if (r < 0) {
		sm_error_set(reterr, "cannot start the forward refresher: %s", strerror(-r));
		goto fail;
	}
	u->refresher_started = true;
	for (size_t i = 0; i < u->n; i++) {
		const struct target *t = &u->targets[i];

		sm_log_info(LOG_CTX,
		            "metrics of %s that no source declares go to '%s' (timeout %" PRId64
		            "ms, %s%s%s)",
		            sm_forward_group_to_string(t->cfg->group), t->name, t->cfg->timeout_ms,
		            t->cfg->token_file ? "token from '" : "no token",
		            t->cfg->token_file ? t->cfg->token_file : "",
		            t->cfg->token_file ? "'" : "");
		if (t->cfg->insecure_skip_tls_verify)
			sm_log_warn(LOG_CTX,
			            "forward to '%s': insecure_skip_tls_verify is set, so its TLS "
			            "certificate is not checked and anyone on the path can answer "
			            "for it (and read the token)",
			            t->name);
	}
	*ret = u;
	return 0;
fail:
	if (r == -ENOMEM && !reterr->message[0])
		sm_error_set(reterr, "out of memory");
	sm_upstream_free(u);
	return r;
}

void sm_upstream_stop(struct sm_upstream *u)
{
	struct job *j = NULL;

	if (!u)
		return;
	if (u->sync_init) {
		(void)pthread_mutex_lock(&u->lock);
		u->stopping = true;
		j = u->head;
		u->head = u->tail = NULL;
		u->queued = 0;
		(void)pthread_cond_broadcast(&u->cond);
		(void)pthread_cond_broadcast(&u->refresh_cond);
		(void)pthread_mutex_unlock(&u->lock);
	}
	atomic_store(&u->abort, true);
	while (j) {
		struct job *next = j->next;
		struct sm_api_response resp = {0};

		if (sm_forward_unavailable(u->fwd, j->upstream, "this server is shutting down",
		                           &resp) < 0)
			resp.content_type = NULL;
		j->done(j->userdata, &resp, NULL);
		job_free(j);
		j = next;
	}
	for (unsigned i = 0; i < u->n_workers; i++)
		(void)pthread_join(u->workers[i], NULL);
	u->n_workers = 0;
	if (u->refresher_started)
		(void)pthread_join(u->refresher, NULL);
	u->refresher_started = false;
}

void sm_upstream_free(struct sm_upstream *u)
{
	if (!u)
		return;
	sm_upstream_stop(u);
	if (u->sync_init) {
		(void)pthread_cond_destroy(&u->refresh_cond);
		(void)pthread_cond_destroy(&u->cond);
		(void)pthread_mutex_destroy(&u->lock);
	}
	for (size_t i = 0; i < u->n; i++) {
		struct target *t = &u->targets[i];

		if (t->token_lock_init)
			(void)pthread_mutex_destroy(&t->token_lock);
		sm_token_file_done(&t->token);
		for (size_t k = 0; k < t->n_clashes; k++)
			free(t->clashes[k]);
		free(t->clashes);
	}
	free(u->targets);
	free(u);
	curl_global_cleanup();
}
