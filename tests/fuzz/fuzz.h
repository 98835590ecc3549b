/* SPDX-License-Identifier: MIT */
/* What every libFuzzer target declares. */
#ifndef SM_FUZZ_H
#define SM_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A NUL-terminated copy of the input (embedded NULs end it early, as in C strings). */
static inline char *fuzz_string(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (!s)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

/* Splits s in place at the first n-1 '\n' into parts (missing ones are ""). */
static inline void fuzz_split(char *s, const char **parts, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char *nl = i + 1 < n ? strchr(s, '\n') : NULL;

		parts[i] = s;
		if (nl) {
			*nl = '\0';
			s = nl + 1;
		} else {
			s += strlen(s);
		}
	}
}

#endif
