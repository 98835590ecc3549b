/* SPDX-License-Identifier: MIT */
/* The Redis collector's keys of a round: the label a glob gives a key (Redis' own glob
 * syntax), where keys and labels are stored (a pool of chunks kept from round to round), and the
 * open-addressing set that keeps a rule from reading a key twice. */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "scalemetrics/hash.h"
#include "scalemetrics/source.h"

#include "redis-internal.h"

#define MAPPED_MIN (128 * 1024) /* bytes: main.c's M_MMAP_THRESHOLD */
#define POOL_CHUNK (MAPPED_MIN - sizeof(struct redis_pool_chunk))

static void extra_done(struct redis_extra *x)
{
	for (size_t g = 0; g < x->n_groups; g++)
		free(x->groups[g].name);
	free(x->groups);
	free(x->error);
}

/* e's extra, added if it has none; NULL when out of memory. */
struct redis_extra *sm_redis_entry_extra(struct redis_state *s, struct redis_entry *e)
{
	if (e->extra == 0) {
		if (s->n_extras == s->cap_extras) {
			size_t cap = s->cap_extras ? s->cap_extras * 2 : 16;
			struct redis_extra *v;

			if (cap > UINT32_MAX - 1 || cap > SIZE_MAX / sizeof(*v))
				return NULL;
			v = realloc(s->extras, cap * sizeof(*v));
			if (!v)
				return NULL;
			s->extras = v;
			s->cap_extras = cap;
		}
		s->extras[s->n_extras] = (struct redis_extra){0};
		e->extra = (uint32_t)++s->n_extras;
	}
	return &s->extras[e->extra - 1];
}

/* Empties the pool for a new round, keeping the chunks the last round used and freeing the
 * rest (a round that needed more than usual does not pin its memory for good). */
static void pool_reset(struct redis_pool *p)
{
	struct redis_pool_chunk *c = p->cur ? p->cur->next : p->head;

	if (!p->dirty && p->cur)
		return; /* reset twice: keep what the last round used */
	p->dirty = false;
	if (p->cur)
		p->cur->next = NULL;
	else
		p->head = NULL;
	while (c) {
		struct redis_pool_chunk *next = c->next;

		free(c);
		c = next;
	}
	for (c = p->head; c; c = c->next)
		c->used = 0;
	p->cur = p->head;
}

static void pool_free(struct redis_pool *p)
{
	p->cur = NULL;
	p->dirty = true;
	pool_reset(p);
}

static char *pool_alloc(struct redis_pool *p, size_t size)
{
	struct redis_pool_chunk *c = p->cur;
	struct redis_pool_chunk *fresh;
	size_t chunk_size = size > POOL_CHUNK ? size : POOL_CHUNK;

	p->dirty = true;
	if (c && size <= c->size - c->used) {
		c->used += size;
		return c->data + c->used - size;
	}
	/* The next kept chunk, if this one is full. */
	if (c && c->next && size <= c->next->size) {
		p->cur = c->next;
		p->cur->used = size;
		return p->cur->data;
	}
	if (chunk_size > SIZE_MAX - sizeof(*fresh))
		return NULL;
	fresh = malloc(sizeof(*fresh) + chunk_size);
	if (!fresh)
		return NULL;
	*fresh = (struct redis_pool_chunk){.size = chunk_size, .used = size};
	if (c) {
		fresh->next = c->next;
		c->next = fresh;
	} else {
		fresh->next = p->head;
		p->head = fresh;
	}
	p->cur = fresh;
	return fresh->data;
}

void sm_redis_entries_clear(struct redis_state *s)
{
	for (size_t i = 0; i < s->n_extras; i++)
		extra_done(&s->extras[i]);
	s->n_extras = 0;
	s->n_entries = 0;
	pool_reset(&s->pool);
	for (size_t i = 0; s->rule_errors && i < s->cfg->rules.n; i++) {
		free(s->rule_errors[i]);
		s->rule_errors[i] = NULL;
	}
}

/* At the end of a round: the entry arrays, when malloc mapped them on their own (thousands of
 * keys), go back to the system rather than staying resident for the whole interval between
 * rounds; the next round maps them again at the size this one needed. The pool and the key
 * set stay: page faults are dear on a VM, and every block given back costs one per page per
 * round (bench/README.md, "3. Footprint", has the figures). */
void sm_redis_entries_release(struct redis_state *s)
{
	sm_redis_entries_clear(s);
	if (s->cap_entries * sizeof(*s->entries) >= MAPPED_MIN) {
		free(s->entries);
		s->entries = NULL;
		s->cap_entries = 0;
	}
	if (s->cap_extras * sizeof(*s->extras) >= MAPPED_MIN) {
		free(s->extras);
		s->extras = NULL;
		s->cap_extras = 0;
	}
}

void sm_redis_entries_free(struct redis_state *s)
{
	sm_redis_entries_clear(s);
	free(s->entries);
	free(s->extras);
	pool_free(&s->pool);
	free(s->scratch);
	free(s->set);
}

/* Redis' glob (stringmatchlen: * ? [...] [^...] [a-z] \x), recording what each '*' matched.
 * Shortest match first for each '*', as Redis does. *budget bounds backtracking. */
bool sm_redis_glob_match(const char *pat, size_t plen, const char *str, size_t slen,
                         struct redis_capture *caps, size_t ncap, size_t *budget)
{
	while (plen > 0) {
		if ((*budget)-- == 0)
			return false;
		switch (pat[0]) {
		case '*':
			while (plen > 1 && pat[1] == '*') {
				pat++;
				plen--;
			}
			if (plen == 1) {
				if (ncap > 0)
					caps[0] = (struct redis_capture){str, slen};
				return true;
			}
			for (size_t k = 0; k <= slen; k++) {
				if (sm_redis_glob_match(pat + 1, plen - 1, str + k, slen - k,
				                        ncap > 0 ? caps + 1 : caps,
				                        ncap > 0 ? ncap - 1 : 0, budget)) {
					if (ncap > 0)
						caps[0] = (struct redis_capture){str, k};
					return true;
				}
				if (*budget == 0)
					return false;
			}
			return false;
		case '?':
			if (slen == 0)
				return false;
			str++;
			slen--;
			break;
		case '[': {
			bool neg, found = false;

			pat++;
			plen--;
			if (slen == 0)
				return false;
			neg = plen > 0 && pat[0] == '^';
			if (neg) {
				pat++;
				plen--;
			}
			for (;;) {
				if (plen == 0) {
					/* Unterminated: Redis treats the end as ']'. */
					break;
				}
				if (pat[0] == '\\' && plen >= 2) {
					pat++;
					plen--;
					if (pat[0] == str[0])
						found = true;
				} else if (pat[0] == ']') {
					break;
				} else if (plen >= 3 && pat[1] == '-') {
					unsigned char lo = (unsigned char)pat[0];
					unsigned char hi = (unsigned char)pat[2];
					unsigned char ch = (unsigned char)str[0];

					if (lo > hi) {
						unsigned char t = lo;

						lo = hi;
						hi = t;
					}
					pat += 2;
					plen -= 2;
					if (ch >= lo && ch <= hi)
						found = true;
				} else if (pat[0] == str[0]) {
					found = true;
				}
				pat++;
				plen--;
			}
			if (neg)
				found = !found;
			if (!found)
				return false;
			str++;
			slen--;
			if (plen == 0)
				return slen == 0;
			break;
		}
		case '\\':
			if (plen >= 2) {
				pat++;
				plen--;
			}
			__attribute__((fallthrough));
		default:
			if (slen == 0 || pat[0] != str[0])
				return false;
			str++;
			slen--;
			break;
		}
		pat++;
		plen--;
	}
	return slen == 0;
}

/* The index of the ']' closing the class whose first character is at pat[i], or of the NUL
 * ending an unterminated one: read as sm_redis_glob_match reads it ('^', "\\x", ranges "a-z",
 * whose end may be ']'). */
static size_t class_end(const char *pat, size_t i)
{
	if (pat[i] == '^')
		i++;
	for (;; i++) {
		if (!pat[i] || pat[i] == ']')
			return i;
		if (pat[i] == '\\' && pat[i + 1])
			i++;
		else if (pat[i + 1] == '-' && pat[i + 2])
			i += 2;
	}
}

size_t sm_redis_count_stars(const char *pat)
{
	size_t n = 0;

	for (size_t i = 0; pat[i]; i++) {
		if (pat[i] == '\\' && pat[i + 1]) {
			i++;
		} else if (pat[i] == '[') {
			/* A '*' in a class is a character: counting it would leave a capture
			 * that glob_match never fills. */
			i = class_end(pat, i + 1);
			if (!pat[i])
				break;
		} else if (pat[i] == '*') {
			n++;
			while (pat[i + 1] == '*')
				i++;
		}
	}
	return n;
}

/* The label value: what the '*'s matched, joined by ':'; else the whole key. Built in
 * *scratch (valid until the next call); -ENOMEM. */
int sm_redis_label_for(char **scratch, size_t *scratch_cap, const char *pat, const char *key,
                       size_t key_len, const char **ret, size_t *ret_len)
{
	struct redis_capture caps[SM_REDIS_MAX_STARS];
	size_t stars = pat ? sm_redis_count_stars(pat) : 0;
	size_t budget = 100000;
	size_t len = 0;
	char *out;

	if (stars > SM_REDIS_MAX_STARS)
		stars = SM_REDIS_MAX_STARS;
	if (stars == 0 ||
	    !sm_redis_glob_match(pat, strlen(pat), key, key_len, caps, stars, &budget)) {
		caps[0] = (struct redis_capture){key, key_len};
		stars = 1;
	}
	for (size_t i = 0; i < stars; i++)
		len += caps[i].len + 1;
	if (len > *scratch_cap) {
		out = realloc(*scratch, len);
		if (!out)
			return -ENOMEM;
		*scratch = out;
		*scratch_cap = len;
	}
	out = *scratch;
	len = 0;
	for (size_t i = 0; i < stars; i++) {
		if (i > 0)
			out[len++] = ':';
		memcpy(out + len, caps[i].p, caps[i].len);
		len += caps[i].len;
	}
	out[len] = '\0';
	/* Keys may hold NUL bytes; the label is a C string and stops at the first. */
	*ret = out;
	*ret_len = strlen(out);
	return 0;
}

static uint64_t hash_key(const char *k, size_t len)
{
	uint64_t h = sm_hash_bytes(k, len);

	/* FNV's low bits depend only on the inputs' low bits, and the table is indexed by the
	 * low bits: mix the high ones in (MurmurHash3's finaliser), or keys like "q:0".."q:9999"
	 * make long probe chains. */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

int sm_redis_keyset_reset(struct redis_state *s)
{
	if (!s->set) {
		s->set_cap = 256;
		s->set = calloc(s->set_cap, sizeof(*s->set));
		if (!s->set)
			return -ENOMEM;
	} else {
		memset(s->set, 0, s->set_cap * sizeof(*s->set));
	}
	s->set_first = s->n_entries;
	return 0;
}

/* The slot for key: holding its entry, or empty. */
static uint32_t *set_slot(struct redis_state *s, const char *key, size_t len)
{
	size_t mask = s->set_cap - 1;
	size_t i = (size_t)hash_key(key, len) & mask;

	for (;;) {
		uint32_t *slot = &s->set[i];
		const struct redis_entry *e;

		if (*slot == 0)
			return slot;
		e = &s->entries[*slot - 1];
		if (e->key_len == len && memcmp(e->key, key, len) == 0)
			return slot;
		i = (i + 1) & mask;
	}
}

static int set_grow(struct redis_state *s)
{
	size_t n = s->n_entries - s->set_first;
	uint32_t *old = s->set;

	if ((n + 1) * 2 <= s->set_cap)
		return 0;
	s->set = calloc(s->set_cap * 2, sizeof(*s->set));
	if (!s->set) {
		s->set = old;
		return -ENOMEM;
	}
	s->set_cap *= 2;
	free(old);
	for (size_t i = s->set_first; i < s->n_entries; i++)
		*set_slot(s, s->entries[i].key, s->entries[i].key_len) = (uint32_t)i + 1;
	return 0;
}

/* Adds key to the current rule unless already there, with label_len bytes of label (NULL for
 * a rule without label). Both are copied. */
int sm_redis_key_add(struct redis_state *s, size_t rule, const char *key, size_t key_len,
                     const char *label, size_t label_len)
{
	struct redis_entry *e;
	uint32_t *slot;
	size_t size;
	char *p;

	if (key_len >= UINT32_MAX)
		return 0; /* cannot be: Redis keys are at most 512 MB */
	slot = set_slot(s, key, key_len);
	if (*slot != 0)
		return 0;
	if (s->n_entries >= s->src->max_series) {
		s->overflow++;
		return 0;
	}
	if (s->n_entries == s->cap_entries) {
		size_t cap = s->cap_entries ? s->cap_entries * 2 : s->entries_hint;
		struct redis_entry *v;

		if (cap > s->src->max_series)
			cap = s->src->max_series;
		v = realloc(s->entries, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		s->entries = v;
		s->cap_entries = cap;
	}
	size = key_len + 1 + (label ? label_len + 1 : 0);
	p = size < key_len ? NULL : pool_alloc(&s->pool, size);
	if (!p)
		return -ENOMEM;
	memcpy(p, key, key_len);
	p[key_len] = '\0';
	if (label) {
		memcpy(p + key_len + 1, label, label_len);
		p[key_len + 1 + label_len] = '\0';
	}
	e = &s->entries[s->n_entries];
	*e = (struct redis_entry){.key = p,
	                          .key_len = (uint32_t)key_len,
	                          .rule = (uint32_t)rule,
	                          .type = (int8_t)s->cfg->rules.v[rule].type,
	                          .has_label = label != NULL};
	*slot = (uint32_t)++s->n_entries;
	return set_grow(s);
}
