/* SPDX-License-Identifier: MIT */
/* resource.Quantity: parse any text; format any double (the first 8 bytes), and what is
 * formatted parses back, and formats to the same text again. */
#include <math.h>
#include <stdio.h>

#include "scalemetrics/quantity.h"

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_string(data, size);
	char buf[SM_QUANTITY_MAX], buf2[SM_QUANTITY_MAX];
	double v, parsed;

	if (sm_quantity_parse(text, &parsed) == 0)
		(void)sm_quantity_milli_value(parsed);
	free(text);
	if (size < sizeof(double))
		return 0;
	memcpy(&v, data, sizeof(v));
	(void)sm_quantity_milli_value(v);
	if (sm_quantity_format(v, buf, sizeof(buf)) != 0)
		return 0;
	if (sm_quantity_parse(buf, &parsed) != 0) {
		(void)fprintf(stderr, "formatted %.17g as '%s', which does not parse\n", v, buf);
		abort();
	}
	if (sm_quantity_format(parsed, buf2, sizeof(buf2)) != 0 || strcmp(buf, buf2) != 0) {
		(void)fprintf(stderr, "'%s' parsed to %.17g formats as '%s'\n", buf, parsed, buf2);
		abort();
	}
	return 0;
}
