/* SPDX-License-Identifier: MIT */
/* The one place that turns text into numbers: integers, floats and durations, each rejecting
 * empty input, surrounding whitespace, trailing garbage and overflow. */
#include "scalemetrics/number.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

int sm_number_parse_int64(const char *s, int64_t *ret)
{
	const char *p = s;
	char *end = NULL;
	long long v;

	if (!s)
		return -EINVAL;
	if (*p == '+' || *p == '-')
		p++;
	if (!is_digit(*p))
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (end == s || *end != '\0')
		return -EINVAL;
	if (errno == ERANGE)
		return -ERANGE;
	*ret = (int64_t)v;
	return 0;
}

int sm_number_parse_uint64(const char *s, uint64_t *ret)
{
	char *end = NULL;
	unsigned long long v;

	/* strtoull accepts a sign and leading whitespace: allow neither. */
	if (!s || !is_digit(*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (*end != '\0')
		return -EINVAL;
	if (errno == ERANGE)
		return -ERANGE;
	*ret = (uint64_t)v;
	return 0;
}

/* [+-]? (digits ('.' digits?)? | '.' digits) ([eE] [+-]? digits)? : the decimal subset of
 * strtod's syntax (no hex, no inf/nan, no whitespace). */
static bool is_decimal_float(const char *s)
{
	size_t int_digits = 0, frac_digits = 0;

	if (*s == '+' || *s == '-')
		s++;
	while (is_digit(*s)) {
		s++;
		int_digits++;
	}
	if (*s == '.') {
		s++;
		while (is_digit(*s)) {
			s++;
			frac_digits++;
		}
	}
	if (int_digits + frac_digits == 0)
		return false;
	if (*s == 'e' || *s == 'E') {
		s++;
		if (*s == '+' || *s == '-')
			s++;
		if (!is_digit(*s))
			return false;
		while (is_digit(*s))
			s++;
	}
	return *s == '\0';
}

int sm_number_parse_double(const char *s, double *ret)
{
	char *end = NULL;
	double v;

	if (!s || !is_decimal_float(s))
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (*end != '\0')
		return -EINVAL;
	/* Underflow rounds to zero or a subnormal, like Go's ParseFloat; overflow is an error. */
	if (errno == ERANGE && isinf(v))
		return -ERANGE;
	*ret = v;
	return 0;
}

int sm_number_parse_float_special(const char *s, double *ret)
{
	const char *p = s;
	double sign = 1.0;

	if (!s)
		return -EINVAL;
	if (strcasecmp(s, "nan") == 0) {
		*ret = NAN;
		return 0;
	}
	if (*p == '+' || *p == '-') {
		sign = *p == '-' ? -1.0 : 1.0;
		p++;
	}
	if (strcasecmp(p, "inf") == 0 || strcasecmp(p, "infinity") == 0) {
		*ret = sign * INFINITY;
		return 0;
	}
	return sm_number_parse_double(s, ret);
}

struct duration_unit {
	const char *name;
	int64_t ns;
};

/* Longest name first where one is a prefix of another ("ms" before "m"). */
static const struct duration_unit duration_units[] = {
    {.name = "ms", .ns = 1000000LL},
    {.name = "s", .ns = 1000000000LL},
    {.name = "m", .ns = 60LL * 1000000000LL},
    {.name = "h", .ns = 3600LL * 1000000000LL},
};

/* A sequence of <decimal number><unit> pairs, like Go's time.ParseDuration but with only the
 * units ms, s, m, h and no sign. Summed in nanoseconds to keep "1.5s" and "0.5ms" exact,
 * then rounded to the nearest millisecond. */
int sm_number_parse_duration_ms(const char *s, int64_t *ret)
{
	const char *p = s;
	uint64_t total_ns = 0;

	if (!s || *s == '\0')
		return -EINVAL;
	while (*p != '\0') {
		uint64_t whole = 0, frac = 0, unit_ns = 0;
		double scale = 1.0;
		bool have_digits = false, overflow = false;
		size_t i;

		while (is_digit(*p)) {
			uint64_t d = (uint64_t)(*p - '0');

			if (whole > (UINT64_MAX - d) / 10)
				overflow = true;
			else
				whole = whole * 10 + d;
			have_digits = true;
			p++;
		}
		if (*p == '.') {
			p++;
			while (is_digit(*p)) {
				/* Digits past 1e18 of precision cannot change the result. */
				if (scale < 1e18) {
					frac = frac * 10 + (uint64_t)(*p - '0');
					scale *= 10.0;
				}
				have_digits = true;
				p++;
			}
		}
		if (!have_digits)
			return -EINVAL;
		for (i = 0; i < sizeof(duration_units) / sizeof(duration_units[0]); i++) {
			size_t n = strlen(duration_units[i].name);

			if (strncmp(p, duration_units[i].name, n) == 0) {
				unit_ns = (uint64_t)duration_units[i].ns;
				p += n;
				break;
			}
		}
		if (unit_ns == 0)
			return -EINVAL;
		if (overflow || whole > (uint64_t)INT64_MAX / unit_ns)
			return -ERANGE;
		whole *= unit_ns;
		whole += (uint64_t)((double)frac * ((double)unit_ns / scale));
		if (whole > (uint64_t)INT64_MAX - total_ns)
			return -ERANGE;
		total_ns += whole;
	}
	*ret = (int64_t)((total_ns + 500000) / 1000000);
	return 0;
}
