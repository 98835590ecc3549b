/* SPDX-License-Identifier: MIT */
/* The keys of the access checks' caches: a SHA-256 digest, so that no token, certificate or
 * review is kept in clear as a key. */
#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>

#include "scalemetrics/auth.h"

static EVP_MD *sha256;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void fetch_sha256(void)
{
	sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
}

int sm_auth_digest_key(const void *data, size_t len, char out[65])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	out[0] = '\0';
	if (pthread_once(&sha256_once, fetch_sha256) != 0 || !sha256 ||
	    EVP_Digest(data, len, md, &n, sha256, NULL) != 1 || n != 32)
		return -EIO;
	for (unsigned int i = 0; i < n; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[64] = '\0';
	return 0;
}
