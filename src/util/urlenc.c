/* SPDX-License-Identifier: MIT */
/* Percent-encoding and -decoding (see the header for whose rules). */
#include "scalemetrics/urlenc.h"

#include <errno.h>
#include <string.h>

int sm_hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int sm_url_decode(const char *s, size_t len, char *out, bool plus_is_space)
{
	size_t w = 0;

	/* Checked whole first, so that a bad escape leaves out (which may be s) as it was. */
	for (size_t i = 0; i < len; i++) {
		if (s[i] != '%')
			continue;
		if (i + 2 >= len)
			return -EINVAL;
		if (sm_hex_value(s[i + 1]) < 0 || sm_hex_value(s[i + 2]) < 0 ||
		    (s[i + 1] == '0' && s[i + 2] == '0'))
			return -EINVAL;
		i += 2;
	}
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '%') {
			out[w++] = (char)(sm_hex_value(s[i + 1]) * 16 + sm_hex_value(s[i + 2]));
			i += 2;
		} else if (s[i] == '+' && plus_is_space) {
			out[w++] = ' ';
		} else {
			out[w++] = s[i];
		}
	}
	out[w] = '\0';
	return 0;
}

static bool unreserved(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_' || c == '.' || c == '~';
}

int sm_url_escape(const char *s, enum sm_url_escape how, char *out, size_t size)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		bool keep = unreserved(*p) || (how == SM_URL_PATH && strchr("$&+,;=:@", *p));
		bool plus = *p == ' ' && how == SM_URL_QUERY;

		if (o + (keep || plus ? 1 : 3) >= size)
			return -ENAMETOOLONG;
		if (keep) {
			out[o++] = (char)*p;
		} else if (plus) {
			out[o++] = '+';
		} else {
			out[o++] = '%';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
		}
	}
	if (o >= size)
		return -ENAMETOOLONG;
	out[o] = '\0';
	return 0;
}
