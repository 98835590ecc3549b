/* SPDX-License-Identifier: MIT */
/* Label selectors: parse anything; what parses formats, and the format parses back to the same
 * text (String() round trip); matching never crashes. */
#include <stdio.h>

#include "scalemetrics/error.h"
#include "scalemetrics/selector.h"
#include "scalemetrics/series.h"

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct sm_label labels[] = {{.name = "app", .value = "web"},
	                                         {.name = "tier", .value = "5"},
	                                         {.name = "x", .value = ""}};
	char *text = fuzz_string(data, size);
	struct sm_selector *sel = NULL, *again = NULL;
	struct sm_error err = {0};
	char buf[8192], buf2[8192];
	size_t n, n2;

	if (sm_selector_parse(text, &sel, &err) == 0) {
		(void)sm_selector_matches(sel, labels, 3);
		(void)sm_selector_matches(sel, NULL, 0);
		for (size_t i = 0; i < sm_selector_count(sel); i++)
			(void)sm_selector_get(sel, i);
		n = sm_selector_format(sel, buf, sizeof(buf));
		if (n < sizeof(buf)) {
			if (sm_selector_parse(buf, &again, &err) != 0) {
				(void)fprintf(stderr,
				              "formatted selector '%s' does not parse: %s\n", buf,
				              err.message);
				abort();
			}
			n2 = sm_selector_format(again, buf2, sizeof(buf2));
			if (n2 != n || strcmp(buf, buf2) != 0) {
				(void)fprintf(stderr, "round trip changed '%s' into '%s'\n", buf,
				              buf2);
				abort();
			}
			sm_selector_free(again);
		}
		sm_selector_free(sel);
	}
	free(text);
	return 0;
}
