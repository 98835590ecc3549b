/* SPDX-License-Identifier: MIT */
/* The config parser (YAML through libyaml, every table, every collector's keys). */
#include "scalemetrics/config.h"
#include "scalemetrics/error.h"
#include "scalemetrics/source.h"

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sm_config *cfg = NULL;
	struct sm_error_list errs = {0};

	sm_config_set_source_parser(sm_source_config_parse);
	if (sm_config_load_string("fuzz.yaml", (const char *)data, size, &cfg, &errs) == 0)
		sm_config_free(cfg);
	for (size_t i = 0; i < errs.n; i++) {
		char buf[1024];

		sm_error_format(&errs.items[i], buf, sizeof(buf));
	}
	sm_error_list_done(&errs);
	return 0;
}
