/* SPDX-License-Identifier: MIT */
/* Benchmark driver for the Redis collector: loads a config naming one redis source, runs
 * rounds of it exactly as the scheduler would (create, collect into a batch, free the batch),
 * and prints per round the wall time and the round trips made. Built and run by run.sh. */

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "scalemetrics/config.h"
#include "scalemetrics/number.h"
#include "scalemetrics/series.h"
#include "scalemetrics/source.h"

#include "redis-internal.h"

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	struct sm_error_list errs = {0};
	struct sm_config *cfg = NULL;
	const struct sm_source_config *src;
	void *state = NULL;
	double *times = NULL;
	char *text = NULL;
	size_t series = 0;
	uint64_t rt0, rt_total = 0;
	int64_t rounds;
	FILE *f;
	long len;
	int r = 1;

	if (argc != 3 || sm_number_parse_int64(argv[2], &rounds) < 0 || rounds < 1) {
		fprintf(stderr, "usage: %s CONFIG.yaml ROUNDS\n", argv[0]);
		return 2;
	}
	f = fopen(argv[1], "re");
	if (!f || fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
		perror(argv[1]);
		goto out;
	}
	text = malloc((size_t)len + 1);
	if (!text || fread(text, 1, (size_t)len, f) != (size_t)len)
		goto out;
	text[len] = '\0';
	sm_config_set_source_parser(sm_source_config_parse);
	if (sm_config_load_string(argv[1], text, (size_t)len, &cfg, &errs) < 0) {
		for (size_t i = 0; i < errs.n; i++) {
			char buf[1024];

			sm_error_format(&errs.items[i], buf, sizeof(buf));
			fprintf(stderr, "%s\n", buf);
		}
		goto out;
	}
	src = &cfg->sources[0];
	if (src->ops->create(src, &state) < 0)
		goto out;
	times = calloc((size_t)rounds, sizeof(*times));
	if (!times)
		goto out;
	/* One warm-up round: connects, and SCAN's hash table is in the cache. */
	for (int64_t i = -1; i < rounds; i++) {
		struct sm_batch *b = sm_batch_new(src->max_series);
		struct sm_error err = {0};
		double t0;
		int k;

		if (!b)
			goto out;
		rt0 = sm_redis_round_trips(state);
		t0 = now_ms();
		k = src->ops->collect(state, b, &err);
		if (i >= 0) {
			times[i] = now_ms() - t0;
			rt_total += sm_redis_round_trips(state) - rt0;
		}
		series = sm_batch_count(b);
		sm_batch_free(b);
		if (k < 0) {
			fprintf(stderr, "round failed: %s\n", err.message);
			goto out;
		}
	}
	qsort(times, (size_t)rounds, sizeof(*times), cmp_double);
	/* series rounds round_trips_per_round min_ms median_ms max_ms */
	printf("%zu %lld %.1f %.2f %.2f %.2f\n", series, (long long)rounds,
	       (double)rt_total / (double)rounds, times[0], times[rounds / 2], times[rounds - 1]);
	r = 0;
out:
	if (f)
		fclose(f);
	if (state)
		cfg->sources[0].ops->destroy(state);
	sm_config_free(cfg);
	sm_error_list_done(&errs);
	free(times);
	free(text);
	return r;
}
