/* SPDX-License-Identifier: MIT */
/* Kubernetes resource.Quantity: canonical DecimalSI formatting of doubles (what the HPA reads),
 * the ParseQuantity grammar, and MilliValue(). docs/api.md "Quantities". */
#include "scalemetrics/quantity.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scalemetrics/number.h"

/* Largest magnitude formatted; below 2^63 so every result fits an int64 mantissa. */
#define QUANTITY_ABS_MAX 9.2e18

/* |v| rounded half away from zero to nano precision, as decimal digits. */
struct nano_digits {
	char integer[24];  /* no sign, at least "0" */
	char fraction[10]; /* exactly 9 digits */
};

/* Adds one unit in the last place of the decimal string s (digits and at most one '.'),
 * in place; returns false when the carry runs off the front (s was all nines). */
static bool increment_decimal(char *s, size_t len)
{
	for (size_t i = len; i-- > 0;) {
		if (s[i] == '.')
			continue;
		if (s[i] != '9') {
			s[i]++;
			return true;
		}
		s[i] = '0';
	}
	return false;
}

/* v must be finite with |v| < QUANTITY_ABS_MAX. printf prints the exact binary value
 * correctly rounded to nearest; only exact ties need care, because glibc breaks them to even
 * and Quantity rounds them away from zero. A tie at the 10th decimal needs a value with at
 * most 10 fractional bits (k / 1024), whose 10-digit decimal expansion is exact: print that
 * and round by hand. Every other value has one nearest nano, which "%.9f" finds. */
static void nano_digits(double v, struct nano_digits *ret)
{
	double a = fabs(v);
	double scaled = a * 1024.0; /* exact: a power of two */
	char text[48];
	char *dot;
	int n;

	if (scaled == floor(scaled)) {
		n = snprintf(text, sizeof(text), "%.10f", a);
		if (text[n - 1] >= '5') {
			if (!increment_decimal(text, (size_t)n - 1)) {
				memmove(text + 1, text, (size_t)n + 1);
				text[0] = '1';
				n++;
			}
		}
		text[n - 1] = '\0';
	} else {
		(void)snprintf(text, sizeof(text), "%.9f", a);
	}
	/* |v| < 9.2e18: at most 19 integer digits, and always 9 fraction digits. */
	dot = strchr(text, '.');
	memcpy(ret->integer, text, (size_t)(dot - text));
	ret->integer[dot - text] = '\0';
	memcpy(ret->fraction, dot + 1, 9);
	ret->fraction[9] = '\0';
}

static const char *const decimal_suffixes[] = {"n", "u", "m", "", "k", "M", "G", "T", "P", "E"};

/* Integral values below 2^53 (queue lengths, counts: most of what is served) are exact in
 * an int64: their digits come without printf, with trailing zeros as k, M, G, T, P. */
static int format_integer(double v, char *buf)
{
	uint64_t u = (uint64_t)fabs(v);
	char digits[24];
	size_t n = 0, k = 0;
	int group = 0;

	if (u == 0) {
		buf[0] = '0';
		buf[1] = '\0';
		return 1;
	}
	while (u % 1000 == 0) {
		u /= 1000;
		group++;
	}
	while (u > 0) {
		digits[n++] = (char)('0' + u % 10);
		u /= 10;
	}
	if (v < 0)
		buf[k++] = '-';
	while (n > 0)
		buf[k++] = digits[--n];
	for (const char *sfx = decimal_suffixes[3 + group]; *sfx; sfx++)
		buf[k++] = *sfx;
	buf[k] = '\0';
	return (int)k;
}

int sm_quantity_format(double v, char *buf, size_t len)
{
	struct nano_digits d;
	char mantissa[48];
	size_t n, start = 0;
	int exp10 = -9, r;

	if (len < SM_QUANTITY_MAX)
		return -ENOBUFS;
	if (!isfinite(v))
		return -EDOM;
	if (fabs(v) >= QUANTITY_ABS_MAX)
		return -ERANGE;
	if (fabs(v) < 9007199254740992.0 && v == trunc(v))
		return format_integer(v, buf);

	nano_digits(v, &d);
	n = (size_t)snprintf(mantissa, sizeof(mantissa), "%s%s", d.integer, d.fraction);
	while (start < n && mantissa[start] == '0')
		start++;
	if (start == n) {
		/* Zero, -0 and everything that rounds to zero at nano precision. */
		buf[0] = '0';
		buf[1] = '\0';
		return 1;
	}
	/* Trailing zeros into the exponent, then the exponent down to a multiple of 3. */
	while (mantissa[n - 1] == '0') {
		n--;
		exp10++;
	}
	while ((exp10 + 9) % 3 != 0) {
		mantissa[n++] = '0';
		exp10--;
	}
	mantissa[n] = '\0';
	r = snprintf(buf, len, "%s%s%s", v < 0 ? "-" : "", mantissa + start,
	             decimal_suffixes[(exp10 + 9) / 3]);
	if (r < 0 || (size_t)r >= len)
		return -ENOBUFS;
	return r;
}

long long sm_quantity_milli_value(double v)
{
	struct nano_digits d;
	long long milli = 0;
	bool round_up = false;

	if (isnan(v))
		return 0;
	if (fabs(v) >= QUANTITY_ABS_MAX)
		return v < 0 ? LLONG_MIN : LLONG_MAX;
	/* From the same nano-rounded decimal that sm_quantity_format() emits, so the result is
	 * exactly what a Go client computes from our string: 0.29 -> 290, not 289. */
	nano_digits(v, &d);
	for (const char *p = d.integer; *p; p++) {
		if (milli > (LLONG_MAX - 9) / 10)
			return v < 0 ? LLONG_MIN : LLONG_MAX;
		milli = milli * 10 + (*p - '0');
	}
	if (milli > LLONG_MAX / 1000 - 1)
		return v < 0 ? LLONG_MIN : LLONG_MAX;
	milli = milli * 1000 + (d.fraction[0] - '0') * 100 + (d.fraction[1] - '0') * 10 +
	        (d.fraction[2] - '0');
	for (int i = 3; i < 9; i++)
		if (d.fraction[i] != '0')
			round_up = true;
	if (round_up)
		milli++;
	return v < 0 ? -milli : milli;
}

struct suffix {
	const char *name;
	int exp10;
	int shift; /* power of two */
};

static const struct suffix suffixes[] = {
    {.name = "n", .exp10 = -9},  {.name = "u", .exp10 = -6},  {.name = "m", .exp10 = -3},
    {.name = "", .exp10 = 0},    {.name = "k", .exp10 = 3},   {.name = "M", .exp10 = 6},
    {.name = "G", .exp10 = 9},   {.name = "T", .exp10 = 12},  {.name = "P", .exp10 = 15},
    {.name = "E", .exp10 = 18},  {.name = "Ki", .shift = 10}, {.name = "Mi", .shift = 20},
    {.name = "Gi", .shift = 30}, {.name = "Ti", .shift = 40}, {.name = "Pi", .shift = 50},
    {.name = "Ei", .shift = 60},
};

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* The value is digits × 10^exp10 × 2^shift (digits without leading zeros). Decimal values
 * are rounded up, away from zero, to a multiple of 10^-9 as ParseQuantity does; binary ones
 * are not (Go's rounding there depends on its internal representation). */
static int build_value(const char *digits, size_t n_digits, int64_t exp10, int shift, bool negative,
                       double *ret)
{
	char *text = NULL;
	double v = 0;
	int r;

	if (n_digits == 0) {
		*ret = 0;
		return 0;
	}
	/* At least 10^(n_digits + exp10 - 1): far beyond any double. */
	if (exp10 > 400 - (int64_t)n_digits)
		return -ERANGE;
	text = malloc(n_digits + 32);
	if (!text)
		return -ENOMEM;
	memcpy(text, digits, n_digits);
	if (shift == 0 && exp10 < -9) {
		/* Keep the digits down to 10^-9, round up if anything non-zero falls off. */
		uint64_t drop = (uint64_t)(-9 - exp10);
		size_t keep = drop < n_digits ? n_digits - (size_t)drop : 0;
		bool nonzero = false;

		for (size_t i = keep; i < n_digits; i++)
			if (digits[i] != '0')
				nonzero = true;
		n_digits = keep;
		exp10 = -9;
		if (nonzero && !increment_decimal(text, n_digits)) {
			/* "" or all nines: the carry makes a new leading 1 ("999" -> "1000"). */
			memmove(text + 1, text, n_digits);
			text[0] = '1';
			n_digits++;
		}
		if (n_digits == 0) {
			free(text);
			*ret = 0;
			return 0;
		}
	}
	(void)snprintf(text + n_digits, 32, "e%lld", (long long)exp10);
	r = sm_number_parse_double(text, &v);
	free(text);
	if (r < 0)
		return r;
	v *= (double)(UINT64_C(1) << shift); /* exact: shift is 0..60 */
	if (!isfinite(v))
		return -ERANGE;
	*ret = negative ? -v : v;
	return 0;
}

int sm_quantity_parse(const char *s, double *ret)
{
	const char *p = s, *int_start, *frac_start, *suffix;
	size_t n_int, n_frac;
	int64_t exp10 = 0;
	int shift = 0;
	bool negative = false, found = false;
	char *digits = NULL;
	size_t n_digits = 0;
	int r;

	if (!s || *s == '\0')
		return -EINVAL;
	if (*p == '+' || *p == '-') {
		negative = *p == '-';
		p++;
	}
	int_start = p;
	while (is_digit(*p))
		p++;
	n_int = (size_t)(p - int_start);
	frac_start = p;
	n_frac = 0;
	if (*p == '.') {
		frac_start = ++p;
		while (is_digit(*p))
			p++;
		n_frac = (size_t)(p - frac_start);
	}
	if (n_int + n_frac == 0)
		return -EINVAL;
	suffix = p;

	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		if (strcmp(suffix, suffixes[i].name) == 0) {
			exp10 = suffixes[i].exp10;
			shift = suffixes[i].shift;
			found = true;
			break;
		}
	}
	if (!found) {
		const char *e = suffix + 1;

		/* "e3", "E-3", "e+03": a decimal exponent ("E" alone is exa, matched above). */
		if (suffix[0] != 'e' && suffix[0] != 'E')
			return -EINVAL;
		if (*e == '+' || *e == '-')
			e++;
		if (!is_digit(*e))
			return -EINVAL;
		while (is_digit(*e))
			e++;
		if (*e != '\0')
			return -EINVAL;
		/* Saturate: 10^±(2^62) is out of reach of any double either way. */
		r = sm_number_parse_int64(suffix + 1, &exp10);
		if (r == -ERANGE)
			exp10 = suffix[1] == '-' ? INT64_MIN / 2 : INT64_MAX / 2;
		else if (r < 0)
			return r;
		if (exp10 > INT64_MAX / 2)
			exp10 = INT64_MAX / 2;
		if (exp10 < INT64_MIN / 2)
			exp10 = INT64_MIN / 2;
	}

	/* Significant digits: integer and fraction digits joined, leading zeros dropped. */
	digits = malloc(n_int + n_frac + 1);
	if (!digits)
		return -ENOMEM;
	memcpy(digits, int_start, n_int);
	memcpy(digits + n_int, frac_start, n_frac);
	n_digits = n_int + n_frac;
	{
		size_t lead = 0;

		while (lead < n_digits && digits[lead] == '0')
			lead++;
		memmove(digits, digits + lead, n_digits - lead);
		n_digits -= lead;
	}
	exp10 -= (int64_t)n_frac; /* |exp10| <= 2^62 and n_frac < 2^62: no overflow */
	r = build_value(digits, n_digits, exp10, shift, negative, ret);
	free(digits);
	return r;
}
