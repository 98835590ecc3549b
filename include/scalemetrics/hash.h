/* SPDX-License-Identifier: MIT */
#ifndef SM_HASH_H
#define SM_HASH_H

#include <stddef.h>
#include <stdint.h>

/* FNV-1a, 64 bits: the tree's one hash of byte strings, for hash tables and content hashes.
 * Not keyed and not cryptographic: whoever picks the input can pick collisions. Pure
 * functions. */

/* The FNV-1a 64 offset basis: the hash of no bytes, and the start of an incremental hash. */
#define SM_HASH_INIT 14695981039346656037ULL

/* Continues hash h over len bytes at p (p may be NULL when len is 0). Hashing pieces in turn,
 * starting from SM_HASH_INIT, gives the same value as hashing them joined in one buffer. */
uint64_t sm_hash_update(uint64_t h, const void *p, size_t len);

/* The FNV-1a 64 hash of len bytes at p: sm_hash_update(SM_HASH_INIT, p, len). */
uint64_t sm_hash_bytes(const void *p, size_t len);

#endif
