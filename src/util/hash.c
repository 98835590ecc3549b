/* SPDX-License-Identifier: MIT */
/* FNV-1a, 64 bits (Fowler, Noll, Vo): xor in a byte, then multiply by the FNV prime. */
#include "scalemetrics/hash.h"

#define FNV_PRIME 1099511628211ULL

uint64_t sm_hash_update(uint64_t h, const void *p, size_t len)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < len; i++) {
		h ^= b[i];
		h *= FNV_PRIME;
	}
	return h;
}

uint64_t sm_hash_bytes(const void *p, size_t len)
{
	return sm_hash_update(SM_HASH_INIT, p, len);
}
