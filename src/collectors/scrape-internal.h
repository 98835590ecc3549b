/* SPDX-License-Identifier: MIT */
/* Shared by the scrape collector's files: scrape-config.c (the config mapping), scrape-fetch.c
 * (targets and their curl transfers), scrape-series.c (the series a target exposes that the
 * rules read, with their recent points), scrape-rules.c (rates, quantiles, averages and gauges
 * per target and summed over targets) and scrape.c (the round). Nobody outside
 * src/collectors/scrape*.c includes it but their tests (test-scrape-rules, fuzz-scrape). */
#ifndef SM_SCRAPE_INTERNAL_H
#define SM_SCRAPE_INTERNAL_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "scalemetrics/buf.h"
#include "scalemetrics/config.h"
#include "scalemetrics/error.h"
#include "scalemetrics/series.h"

struct sm_batch;
struct sm_kube_config;
struct sm_source_config;
struct sm_window_point;

#define SCRAPE_MAX_BY 16 /* labels in a rule's `by` */

/* ---- configuration (scrape-config.c) ---- */

enum rule_kind {
	RULE_RATE,
	RULE_QUANTILE,
	RULE_AVERAGE,
	RULE_GAUGE,
	RULE_KIND_MAX,
};

extern const char *const sm_scrape_scheme_names[]; /* pods.scheme: "http", "https" */

struct scrape_rule {
	enum rule_kind kind;
	char *metric;
	char *counter;   /* rates */
	char *histogram; /* quantiles, averages */
	char *gauge;     /* gauges */
	struct sm_opt_double quantile;
	int64_t window_ms; /* -1 until parsed */
	struct sm_strv by;
	struct sm_opt_double fallback;
	/* Indexes into the name table, set by sm_scrape_rule_bind(). */
	int name_idx;  /* counter, gauge or the histogram's _bucket */
	int sum_idx;   /* histogram _sum (averages) */
	int count_idx; /* histogram _count (averages) */
};

struct scrape_rules {
	struct scrape_rule *v;
	size_t n;
};

struct scrape_pods {
	char *namespace;
	char *selector;
	int64_t port;
	char *path;
	int scheme; /* index in sm_scrape_scheme_names */
};

struct scrape_config {
	struct sm_strv targets;
	bool has_pods;
	struct scrape_pods pods;
	int64_t max_body_bytes;
	char *ca_file;
	bool insecure_skip_verify;
	struct scrape_rules rates, quantiles, averages, gauges;
	const struct sm_kube_config *kube; /* borrowed from the loaded config; may be NULL */
};

int sm_scrape_config_parse(struct sm_config_parser *p, const struct sm_config_node *node,
                           struct sm_source_config *src);
void sm_scrape_config_free(void *priv);

/* ---- the series of one target (scrape-series.c) ---- */

/* A scraped metric name some rule reads. */
struct scrape_name {
	char *name;
	int64_t keep_ms; /* the longest window of a rule that reads it; 0: the last point only */
	bool is_bucket;
};

struct scrape_names {
	struct scrape_name *v;
	size_t n;
};

/* The index of base+suffix in the table, added if new; its keep_ms grows to the longest
 * window. -ENOMEM. */
int sm_scrape_names_add(struct scrape_names *names, const char *base, const char *suffix,
                        int64_t keep_ms, bool is_bucket);
void sm_scrape_names_done(struct scrape_names *names);

/* One series a target exposes that a rule uses, and its recent points. Its key holds
 * "name\0l1\0v1\0l2\0v2\0" with labels sorted by name; name and labels point into it. */
struct scrape_series {
	char *key;
	size_t key_len;
	uint64_t hash;
	int name_idx;
	struct sm_label *labels;
	size_t n_labels;
	double le; /* _bucket series: the le label */
	uint64_t seen_round;
	double pending;
	struct sm_window_point *pts;
	size_t n_pts, cap_pts;
};

/* A target's series: open addressing, linear probing; empty slots are NULL. */
struct scrape_table {
	struct scrape_series **slots;
	size_t cap, n;
};

void sm_scrape_table_done(struct scrape_table *t);

/* A body arrived at at_ms (our monotonic clock; exposition timestamps are ignored): parses it
 * and, on success, appends one point to each series the rules use and forgets series it no
 * longer has. round numbers the scrape (increasing, never 0); key is scratch space. -ENOMEM;
 * -EINVAL (malformed exposition, duplicate series, a bucket without a numeric le) or -E2BIG
 * (over max_series) with reterr's message naming the line, and the points left as they were. */
int sm_scrape_table_ingest(struct scrape_table *t, const struct scrape_names *names,
                           const char *body, size_t len, uint64_t round, int64_t at_ms,
                           size_t max_series, struct sm_buf *key, struct sm_error *reterr);

/* ---- rules (scrape-rules.c) ---- */

/* Resolves the scraped names rule reads into names (its name_idx, sum_idx, count_idx).
 * -ENOMEM. */
int sm_scrape_rule_bind(struct scrape_rule *rule, struct scrape_names *names);

/* A pod as served: the object of its per-pod series. */
struct scrape_pod {
	char *name;
	char *namespace;
	struct sm_label *labels;
	size_t n_labels;
};

void sm_scrape_pod_done(struct scrape_pod *pod);

/* One output group (by-values) of a rule: per target, then summed over targets. */
struct scrape_bucket {
	double le;
	double count;
};

struct scrape_acc {
	char *key; /* by-values, each NUL-terminated */
	size_t key_len;
	bool has;
	double value;                  /* rates, gauges */
	double sum_inc, count_inc;     /* averages */
	struct scrape_bucket *buckets; /* quantiles */
	size_t n_buckets, cap_buckets;
};

struct scrape_acc_set {
	struct scrape_acc *v;
	size_t n, cap;
};

/* How a target counts in a round's aggregate. */
enum scrape_part {
	SCRAPE_PART_FRESH,   /* scraped this round: served as a pod, summed */
	SCRAPE_PART_RECENT,  /* failed, last good values within max_age: summed, not served */
	SCRAPE_PART_MISSING, /* failed, nothing recent: the sums would be partial */
	SCRAPE_PART_MAX,
};

enum scrape_part sm_scrape_part(bool ok, bool has_ok, int64_t last_ok_ms, int64_t now_ms,
                                int64_t max_age_ms);

/* A round's sums over targets, per rule. The rules are borrowed. */
struct scrape_aggregate {
	struct scrape_rule **rules;
	size_t n_rules;
	struct scrape_acc_set *totals; /* per rule */
	struct scrape_acc_set local;   /* one target, one rule */
	bool partial;                  /* a target's part is missing: no sums are served */
};

/* -ENOMEM. */
int sm_scrape_aggregate_init(struct scrape_aggregate *a, struct scrape_rule **rules,
                             size_t n_rules);
void sm_scrape_aggregate_done(struct scrape_aggregate *a);
/* Starts a round: no sums, not partial. */
void sm_scrape_aggregate_begin(struct scrape_aggregate *a);
/* Computes every rule over table up to at_ms (the target's last successful scrape), adds the
 * per-pod series to batch when pod is not NULL, and adds its groups to the sums. -ENOMEM. */
int sm_scrape_aggregate_add(struct scrape_aggregate *a, const struct scrape_table *table,
                            int64_t at_ms, const struct scrape_pod *pod, struct sm_batch *batch);
/* A target whose part is missing: the sums would be partial, so each rule's aggregate is a
 * failure saying error instead (no object; labels partial, as the target's `by` values are
 * not known). -ENOMEM. */
int sm_scrape_aggregate_miss(struct scrape_aggregate *a, const char *error, struct sm_batch *batch);
/* Ends a round: adds the sums to batch unless a target's part was missing. -ENOMEM. */
int sm_scrape_aggregate_finish(struct scrape_aggregate *a, struct sm_batch *batch);
/* A pod whose scrape failed: every rule's metric on the pod is a failure saying error (their
 * `by` labels are not known), so that asking for that pod gets 503 rather than nothing.
 * -ENOMEM. */
int sm_scrape_pod_fail(struct scrape_rule *const *rules, size_t n_rules,
                       const struct scrape_pod *pod, const char *error, struct sm_batch *batch);

/* ---- targets and their transfers (scrape-fetch.c) ---- */

struct scrape_target {
	char *id; /* pod UID or the static URL */
	char *url;
	char *shown_url; /* url without its userinfo (a password), for messages */
	bool is_pod;
	struct scrape_pod pod; /* is_pod */
	bool listed;           /* seen in this round's pod list */

	CURL *easy;
	struct sm_buf body;
	char errbuf[CURL_ERROR_SIZE];
	bool done;

	bool ok;            /* this round's scrape and parse succeeded */
	bool has_ok;        /* some round's did */
	int64_t last_ok_ms; /* when the body of the last successful round arrived */
	int64_t t_ms;       /* when this round's body arrived */
	char error[384];    /* this round's failure */

	struct scrape_table table;
};

/* What every transfer shares. */
struct scrape_fetch_opts {
	const struct scrape_config *cfg;
	int64_t timeout_ms;
	struct curl_slist *headers; /* Accept */
};

int sm_scrape_target_new(const struct scrape_fetch_opts *o, const char *id, const char *url,
                         struct scrape_target **ret);
void sm_scrape_target_free(struct scrape_target *t);
void sm_scrape_target_set_error(struct scrape_target *t, const char *fmt, ...) SM_PRINTF(2, 3);

/* Called for each target whose body arrived with status 200 (t->body, t->t_ms); sets t->ok
 * when it is used. A negative return aborts the round. */
typedef int (*sm_scrape_body_fn)(struct scrape_target *t, void *userdata);

/* Fetches every target at once on multi, each bounded by its own timeout and max body; a
 * target's failure is its t->error. -ENOMEM or -EPROTO (reterr) when curl multi itself
 * fails, or fn's negative return; every transfer is off multi again on return. */
/* Transfers running at once in a round (see scrape-fetch.c for why there is a bound). */
#define SM_SCRAPE_MAX_IN_FLIGHT 64

/* Fetches every target, handing each body to fn as it arrives, beginning with targets[*first
 * % n]; a target not started by deadline_ms (monotonic; the first wave always starts) fails
 * without a transfer, and *first becomes the first of those, so the next round begins with
 * them. Each target ends done, with ok or an error. 0, or -errno when the round itself
 * failed (reterr). */
int sm_scrape_fetch_all(CURLM *multi, struct scrape_target *const *targets, size_t n,
                        int64_t deadline_ms, size_t *first, sm_scrape_body_fn fn, void *userdata,
                        struct sm_error *reterr);

#endif
