/* SPDX-License-Identifier: MIT */
/* Benchmark of the scrape collector: loads a config with one scrape source (see run.sh: 500
 * loopback targets of 200 series each), runs rounds back to back and prints, per round, the
 * wall time and the CPU time (user + system) this process spent, then the median. */
#include <curl/curl.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "scalemetrics/clock.h"
#include "scalemetrics/config.h"
#include "scalemetrics/number.h"
#include "scalemetrics/series.h"
#include "scalemetrics/source.h"
#include "scalemetrics/store.h"

#define MAX_ROUNDS 1000

static int64_t cpu_us(void)
{
	struct rusage ru;

	(void)getrusage(RUSAGE_SELF, &ru);
	return (int64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 + ru.ru_utime.tv_usec +
	       ru.ru_stime.tv_usec;
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	struct sm_error_list errs = {0};
	struct sm_config *cfg = NULL;
	const struct sm_source_config *src;
	static int64_t wall[MAX_ROUNDS], cpu[MAX_ROUNDS];
	void *state = NULL;
	uint64_t rounds = 10;
	size_t n = 0;
	int r;

	if (argc < 2 || (argc > 2 && (sm_number_parse_uint64(argv[2], &rounds) < 0 || rounds < 3 ||
	                              rounds > MAX_ROUNDS))) {
		fprintf(stderr, "usage: %s CONFIG [ROUNDS 3..%d]\n", argv[0], MAX_ROUNDS);
		return 2;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	sm_config_set_source_parser(sm_source_config_parse);
	r = sm_config_load(argv[1], &cfg, &errs);
	if (r < 0) {
		for (size_t i = 0; i < errs.n; i++) {
			char buf[1024];

			sm_error_format(&errs.items[i], buf, sizeof(buf));
			fprintf(stderr, "%s\n", buf);
		}
		return 1;
	}
	src = &cfg->sources[0];
	r = src->ops->create(src, &state);
	if (r < 0) {
		fprintf(stderr, "create: %s\n", strerror(-r));
		return 1;
	}
	printf("round  wall_ms  cpu_ms  series  note\n");
	for (uint64_t i = 0; i < rounds; i++) {
		struct sm_batch *b = sm_batch_new(src->max_series);
		struct sm_error err = {0};
		int64_t t0 = sm_time_mono_ms(), c0 = cpu_us();

		r = src->ops->collect(state, b, &err);
		wall[n] = sm_time_mono_ms() - t0;
		cpu[n] = (cpu_us() - c0) / 1000;
		printf("%5llu  %7lld  %6lld  %6zu  %s%s\n", (unsigned long long)i + 1,
		       (long long)wall[n], (long long)cpu[n], r < 0 ? 0 : sm_batch_count(b),
		       r < 0 ? "FAILED: " : "", err.message);
		n++;
		sm_batch_free(b);
	}
	/* The first round opens every connection: report it apart, the median of the rest. */
	printf("first round: wall %lld ms, cpu %lld ms\n", (long long)wall[0], (long long)cpu[0]);
	qsort(wall + 1, n - 1, sizeof(wall[0]), cmp_i64);
	qsort(cpu + 1, n - 1, sizeof(cpu[0]), cmp_i64);
	printf("later rounds (median of %zu): wall %lld ms, cpu %lld ms\n", n - 1,
	       (long long)wall[1 + (n - 1) / 2], (long long)cpu[1 + (n - 1) / 2]);
	src->ops->destroy(state);
	sm_config_free(cfg);
	sm_error_list_done(&errs);
	curl_global_cleanup();
	return 0;
}
