/* SPDX-License-Identifier: MIT */
/* The scrape collector's sample table and rules (scrape-internal.h): up to three bodies, split
 * at form feeds, scraped 10s apart into one target's table, then every kind of rule computed
 * over it per pod and into the sums. */
#include "scalemetrics/buf.h"
#include "scalemetrics/error.h"
#include "scalemetrics/series.h"

#include "fuzz.h"
#include "scrape-internal.h"

#define MAX_BODIES 3

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *by_a[] = {"a"};
	static const char *by_ab[] = {"a", "b"};
	struct scrape_rule rules_v[] = {
	    {.kind = RULE_RATE, .metric = "r", .counter = "c_total", .window_ms = 30000},
	    {.kind = RULE_QUANTILE,
	     .metric = "q",
	     .histogram = "h",
	     .quantile = {.set = true, .value = 0.9},
	     .window_ms = 30000},
	    {.kind = RULE_AVERAGE, .metric = "m", .histogram = "h", .window_ms = 20000},
	    {.kind = RULE_GAUGE, .metric = "g", .gauge = "g"},
	};
	struct scrape_rule *rules[sizeof(rules_v) / sizeof(rules_v[0])];
	struct scrape_pod pod = {.name = "p", .namespace = "ns"};
	struct scrape_names names = {0};
	struct scrape_table table = {0};
	struct scrape_aggregate agg = {0};
	struct sm_buf key = {0};
	struct sm_batch *batch = sm_batch_new(1000);
	const uint8_t *p = data, *end = data + size;
	int64_t last_ok_ms = -1;

	if (!batch)
		abort();
	rules_v[0].by = (struct sm_strv){.v = (char **)by_a, .n = 1};
	rules_v[1].by = (struct sm_strv){.v = (char **)by_a, .n = 1};
	rules_v[3].by = (struct sm_strv){.v = (char **)by_ab, .n = 2};
	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
		rules[i] = &rules_v[i];
		if (sm_scrape_rule_bind(rules[i], &names) < 0)
			abort();
	}
	if (sm_scrape_aggregate_init(&agg, rules, sizeof(rules) / sizeof(rules[0])) < 0)
		abort();
	for (uint64_t round = 1; round <= MAX_BODIES && p <= end; round++) {
		const uint8_t *ff = memchr(p, '\f', (size_t)(end - p));
		size_t len = (size_t)((ff ? ff : end) - p);
		struct sm_error err = {0};
		int64_t at_ms = (int64_t)round * 10000;

		if (sm_scrape_table_ingest(&table, &names, (const char *)p, len, round, at_ms, 50,
		                           &key, &err) == 0)
			last_ok_ms = at_ms;
		if (!ff)
			break;
		p = ff + 1;
	}
	sm_scrape_aggregate_begin(&agg);
	if (last_ok_ms >= 0) {
		(void)sm_scrape_aggregate_add(&agg, &table, last_ok_ms, &pod, batch);
		(void)sm_scrape_aggregate_add(&agg, &table, last_ok_ms, NULL, batch);
	} else {
		(void)sm_scrape_pod_fail(rules, sizeof(rules) / sizeof(rules[0]), &pod, "failed",
		                         batch);
		(void)sm_scrape_aggregate_miss(&agg, "failed", batch);
	}
	(void)sm_scrape_aggregate_finish(&agg, batch);
	sm_batch_free(batch);
	sm_scrape_aggregate_done(&agg);
	sm_scrape_table_done(&table);
	sm_scrape_names_done(&names);
	free(key.data);
	return 0;
}
