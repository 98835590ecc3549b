/* SPDX-License-Identifier: MIT */
#ifndef SM_URLENC_H
#define SM_URLENC_H

#include <stdbool.h>
#include <stddef.h>

/* Percent-encoding, both ways, as Go's net/url does it (the apiserver and the HPA's client
 * are Go): decoding request paths, queries and header values; escaping path segments and
 * query values for the URLs we build. */

/* The value of one hex digit, or -1. */
int sm_hex_value(char c);

/* Decodes the len bytes at s into out (room for len + 1 bytes: the result is never longer;
 * out may be s). With plus_is_space, '+' decodes to a space (a query or form value).
 * -EINVAL for a malformed escape or an encoded NUL, and out is untouched then. */
int sm_url_decode(const char *s, size_t len, char *out, bool plus_is_space);

enum sm_url_escape {
	SM_URL_QUERY, /* url.QueryEscape: unreserved kept, space as '+', the rest %XX */
	SM_URL_PATH,  /* url.PathEscape of one segment, but '*' as %2A, as the HPA sends it */
};

/* Escapes s into out (size bytes, NUL included). -ENAMETOOLONG when it does not fit. */
int sm_url_escape(const char *s, enum sm_url_escape how, char *out, size_t size);

#endif
