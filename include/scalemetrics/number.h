/* SPDX-License-Identifier: MIT */
#ifndef SM_NUMBER_H
#define SM_NUMBER_H

#include <stdint.h>

#include "scalemetrics/error.h"

/* The one place that turns text into numbers. All reject empty input, leading/trailing
 * garbage (including whitespace) and overflow. On error *ret is untouched. */

/* Base-10 signed integer, optional leading '-' or '+'. -EINVAL (syntax), -ERANGE. */
int sm_number_parse_int64(const char *s, int64_t *ret) SM_MUSTCHECK;
/* Base-10 unsigned integer, no sign. */
int sm_number_parse_uint64(const char *s, uint64_t *ret) SM_MUSTCHECK;
/* Finite double (strtod syntax, no hex, no inf/nan unless allow_special). */
int sm_number_parse_double(const char *s, double *ret) SM_MUSTCHECK;
/* Prometheus-style float: also "NaN", "+Inf", "-Inf", "Inf". */
int sm_number_parse_float_special(const char *s, double *ret) SM_MUSTCHECK;
/* Duration with a unit: "500ms", "5s", "1m", "1h", "1m30s", "1.5s". Units: ms s m h.
 * A bare number without unit is -EINVAL. Result in milliseconds, >= 0. */
int sm_number_parse_duration_ms(const char *s, int64_t *ret) SM_MUSTCHECK;

#endif
