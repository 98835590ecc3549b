/* SPDX-License-Identifier: MIT */
/* The Prometheus text exposition parser: every sample handed out is read completely. */
#include "scalemetrics/error.h"
#include "scalemetrics/promtext.h"
#include "scalemetrics/series.h"

#include "fuzz.h"

static int on_sample(const struct sm_prom_sample *s, void *userdata)
{
	size_t *total = userdata;

	*total += strlen(s->name) + (size_t)s->type + s->line;
	for (size_t i = 0; i < s->n_labels; i++)
		*total += strlen(s->labels[i].name) + strlen(s->labels[i].value);
	(void)sm_promtext_metric_name_is_valid(s->name);
	return *total > ((size_t)1 << 40) ? -1 : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sm_error err = {0};
	size_t total = 0;
	char *copy = malloc(size ? size : 1);

	if (!copy)
		abort();
	/* Exactly size bytes, no terminator: the parser must respect len. */
	memcpy(copy, data, size);
	(void)sm_promtext_parse(copy, size, on_sample, &total, &err);
	free(copy);
	return 0;
}
