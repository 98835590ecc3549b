/* SPDX-License-Identifier: MIT */
/* Who made a request (user.Info): its done/JSON forms, string vectors, and the user a front
 * proxy names in its request headers (docs/api.md "Front-proxy authentication"). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "scalemetrics/auth.h"
#include "scalemetrics/urlenc.h"

#include "auth-internal.h"

void sm_auth_user_done(struct sm_auth_user *u)
{
	if (!u)
		return;
	free(u->name);
	free(u->uid);
	sm_strv_done(&u->groups);
	for (size_t i = 0; i < u->n_extra; i++) {
		free(u->extra[i].key);
		sm_strv_done(&u->extra[i].values);
	}
	free(u->extra);
	*u = (struct sm_auth_user){0};
}

int sm_auth_strv_push(struct sm_strv *v, const char *s, size_t len)
{
	char **nv;
	char *copy = strndup(s, len);

	if (!copy)
		return -ENOMEM;
	nv = realloc(v->v, (v->n + 2) * sizeof(char *));
	if (!nv) {
		free(copy);
		return -ENOMEM;
	}
	v->v = nv;
	v->v[v->n++] = copy;
	v->v[v->n] = NULL;
	return 0;
}

int sm_auth_strv_copy(struct sm_strv *dst, const struct sm_strv *src)
{
	for (size_t i = 0; i < src->n; i++)
		if (sm_auth_strv_push(dst, src->v[i], strlen(src->v[i])) < 0)
			return -ENOMEM;
	return 0;
}

bool sm_auth_user_in_group(const struct sm_auth_user *u, const char *g)
{
	for (size_t i = 0; u && i < u->groups.n; i++)
		if (strcmp(u->groups.v[i], g) == 0)
			return true;
	return false;
}

int sm_auth_user_add_group(struct sm_auth_user *u, const char *g)
{
	if (sm_auth_user_in_group(u, g))
		return 0;
	return sm_auth_strv_push(&u->groups, g, strlen(g));
}

static struct sm_auth_extra *extra_get(struct sm_auth_user *u, const char *key, size_t klen)
{
	struct sm_auth_extra *ne;

	for (size_t i = 0; i < u->n_extra; i++)
		if (strlen(u->extra[i].key) == klen && memcmp(u->extra[i].key, key, klen) == 0)
			return &u->extra[i];
	ne = realloc(u->extra, (u->n_extra + 1) * sizeof(*ne));
	if (!ne)
		return NULL;
	u->extra = ne;
	ne = &u->extra[u->n_extra];
	*ne = (struct sm_auth_extra){.key = strndup(key, klen)};
	if (!ne->key)
		return NULL;
	u->n_extra++;
	return ne;
}

cJSON *sm_auth_strv_to_json(const struct sm_strv *v)
{
	cJSON *a = cJSON_CreateArray();

	for (size_t i = 0; a && i < v->n; i++) {
		cJSON *s = cJSON_CreateString(v->v[i]);

		if (!s || !cJSON_AddItemToArray(a, s)) {
			cJSON_Delete(s);
			cJSON_Delete(a);
			return NULL;
		}
	}
	return a;
}

cJSON *sm_auth_extra_to_json(const struct sm_auth_user *u)
{
	cJSON *ex = cJSON_CreateObject();

	for (size_t i = 0; ex && i < u->n_extra; i++) {
		cJSON *vals = sm_auth_strv_to_json(&u->extra[i].values);

		if (!vals || !cJSON_AddItemToObject(ex, u->extra[i].key, vals)) {
			cJSON_Delete(vals);
			cJSON_Delete(ex);
			return NULL;
		}
	}
	return ex;
}

cJSON *sm_auth_user_to_json(const struct sm_auth_user *u)
{
	cJSON *j = cJSON_CreateObject();
	cJSON *g, *ex;

	if (!j || !cJSON_AddStringToObject(j, "username", u->name ? u->name : ""))
		goto fail;
	if (u->uid && !cJSON_AddStringToObject(j, "uid", u->uid))
		goto fail;
	g = sm_auth_strv_to_json(&u->groups);
	if (!g || !cJSON_AddItemToObject(j, "groups", g)) {
		cJSON_Delete(g);
		goto fail;
	}
	ex = sm_auth_extra_to_json(u);
	if (!ex || !cJSON_AddItemToObject(j, "extra", ex)) {
		cJSON_Delete(ex);
		goto fail;
	}
	return j;
fail:
	cJSON_Delete(j);
	return NULL;
}

/* Appends the strings of a JSON array (others are skipped). */
static int strv_from_json(const cJSON *a, struct sm_strv *v)
{
	const cJSON *it;

	cJSON_ArrayForEach(it, a)
	{
		if (cJSON_IsString(it) &&
		    sm_auth_strv_push(v, it->valuestring, strlen(it->valuestring)) < 0)
			return -ENOMEM;
	}
	return 0;
}

int sm_auth_user_from_json(const cJSON *j, struct sm_auth_user *ret)
{
	struct sm_auth_user u = {0};
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(j, "username");
	const cJSON *uid = cJSON_GetObjectItemCaseSensitive(j, "uid");
	const cJSON *extra = cJSON_GetObjectItemCaseSensitive(j, "extra");
	const cJSON *it;

	if (!cJSON_IsString(name) || !name->valuestring[0])
		return -EPROTO;
	u.name = strdup(name->valuestring);
	if (!u.name)
		goto oom;
	if (cJSON_IsString(uid) && uid->valuestring[0]) {
		u.uid = strdup(uid->valuestring);
		if (!u.uid)
			goto oom;
	}
	if (strv_from_json(cJSON_GetObjectItemCaseSensitive(j, "groups"), &u.groups) < 0)
		goto oom;
	if (cJSON_IsObject(extra)) {
		cJSON_ArrayForEach(it, extra)
		{
			struct sm_auth_extra *e;

			if (!it->string)
				continue;
			e = extra_get(&u, it->string, strlen(it->string));
			if (!e || strv_from_json(it, &e->values) < 0)
				goto oom;
		}
	}
	*ret = u;
	return 0;
oom:
	sm_auth_user_done(&u);
	return -ENOMEM;
}

/* ---- request headers ---- */

static const char *const default_user_headers[] = {"X-Remote-User", NULL};
static const char *const default_group_headers[] = {"X-Remote-Group", NULL};
static const char *const default_extra_prefixes[] = {"X-Remote-Extra-", NULL};

static const char *const *names_or(const struct sm_strv *v, const char *const *def)
{
	return v && v->n > 0 ? (const char *const *)v->v : def;
}

int sm_auth_user_from_headers(const struct sm_auth_header_names *names,
                              const struct sm_auth_header *headers, size_t n_headers,
                              struct sm_auth_user *ret)
{
	const char *const *user_h = names_or(names ? &names->username : NULL, default_user_headers);
	const char *const *group_h = names_or(names ? &names->group : NULL, default_group_headers);
	const char *const *extra_p =
	    names_or(names ? &names->extra_prefix : NULL, default_extra_prefixes);
	struct sm_auth_user u = {0};
	const char *user = NULL;

	for (const char *const *h = user_h; *h && !user; h++)
		for (size_t i = 0; i < n_headers && !user; i++)
			if (strcasecmp(headers[i].name, *h) == 0 && headers[i].value &&
			    headers[i].value[0])
				user = headers[i].value;
	if (!user)
		return 0;
	u.name = strdup(user);
	if (!u.name)
		goto oom;
	for (const char *const *h = group_h; *h; h++)
		for (size_t i = 0; i < n_headers; i++)
			if (strcasecmp(headers[i].name, *h) == 0 && headers[i].value &&
			    headers[i].value[0] &&
			    sm_auth_strv_push(&u.groups, headers[i].value,
			                      strlen(headers[i].value)) < 0)
				goto oom;
	for (size_t i = 0; i < n_headers; i++) {
		for (const char *const *p = extra_p; *p; p++) {
			size_t plen = strlen(*p);
			const char *rest;
			struct sm_auth_extra *e;
			char *key, *dec;
			const char *name;

			if (strncasecmp(headers[i].name, *p, plen) != 0)
				continue;
			rest = headers[i].name + plen;
			key = strdup(rest);
			dec = malloc(strlen(rest) + 1);
			if (!key || !dec) {
				free(key);
				free(dec);
				goto oom;
			}
			for (char *c = key; *c; c++)
				if (*c >= 'A' && *c <= 'Z')
					*c = (char)(*c + 32);
			/* url.PathUnescape, as the apiserver does; undecodable: as sent. */
			name = sm_url_decode(key, strlen(key), dec, false) == 0 ? dec : key;
			e = extra_get(&u, name, strlen(name));
			free(key);
			free(dec);
			if (!e ||
			    sm_auth_strv_push(&e->values, headers[i].value ? headers[i].value : "",
			                      strlen(headers[i].value ? headers[i].value : "")) < 0)
				goto oom;
			break;
		}
	}
	*ret = u;
	return 1;
oom:
	sm_auth_user_done(&u);
	return -ENOMEM;
}
