/* SPDX-License-Identifier: MIT */
#ifndef SM_QUANTITY_H
#define SM_QUANTITY_H

#include <stddef.h>

#include "scalemetrics/error.h"

/* Enough for "-9223372036854775807E" and the NUL. */
#define SM_QUANTITY_MAX 32

/* Formats v as a Kubernetes resource.Quantity in canonical DecimalSI form (see
 * docs/api.md "Formatting quantities"): exact decimal value of v rounded half away from zero to
 * nano (1e-9) precision, trailing zeros moved into the exponent, exponent lowered to a
 * multiple of 3, suffix n u m "" k M G T P E. 0.8 -> "800m", 1500 -> "1500",
 * 1234.5678 -> "1234567800u", 0 and -0 -> "0".
 * Returns the length written, -EDOM for NaN/Inf, -ERANGE when |v| >= 9.2e18,
 * -ENOBUFS when len < SM_QUANTITY_MAX. */
int sm_quantity_format(double v, char *buf, size_t len) SM_MUSTCHECK;

/* Parses the ParseQuantity grammar (docs/api.md "Parsing quantities") into a double (binary and
 * decimal SI suffixes, exponents). For tests and `explain`. -EINVAL on syntax errors; *ret
 * untouched then. */
int sm_quantity_parse(const char *s, double *ret) SM_MUSTCHECK;

/* ceil(v * 1000) away from zero, as the HPA's MilliValue(). */
long long sm_quantity_milli_value(double v);

#endif
