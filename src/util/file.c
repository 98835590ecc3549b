/* SPDX-License-Identifier: MIT */
/* Small files read whole, and secrets given by an environment variable or a file. */
#include "scalemetrics/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void wipe(char *p, size_t n)
{
	volatile char *v = p;

	while (n-- > 0)
		*v++ = 0;
}

/* realloc, but with SM_FILE_SECRET the old block is wiped rather than left in the heap. */
static char *grow(char *buf, size_t len, size_t cap, unsigned flags)
{
	char *n;

	if (!(flags & SM_FILE_SECRET) || !buf)
		return realloc(buf, cap);
	n = malloc(cap);
	if (n) {
		memcpy(n, buf, len);
		wipe(buf, len);
		free(buf);
	}
	return n;
}

static int fail(struct sm_error *e, const char *path, int r, const char *step)
{
	if (e) {
		(void)snprintf(e->file, sizeof(e->file), "%s", path);
		e->line = 0;
		e->column = 0;
		sm_error_set(e, "%s: %s", step, strerror(-r));
	}
	return r;
}

int sm_file_read(const char *path, size_t max, unsigned flags, char **ret, size_t *ret_len,
                 struct sm_error *reterr)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	struct stat st;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return fail(reterr, path, -errno, "cannot open");
	if (fstat(fd, &st) < 0) {
		r = fail(reterr, path, -errno, "cannot stat");
		goto out;
	}
	if ((flags & SM_FILE_REGULAR) && !S_ISREG(st.st_mode)) {
		r = -EINVAL;
		if (reterr) {
			(void)fail(reterr, path, r, "");
			sm_error_set(reterr, "not a regular file");
		}
		goto out;
	}
	for (;;) {
		ssize_t k;

		if (cap - len < 2) {
			/* Start at the size fstat saw (plus room to see the end), then double. */
			size_t ncap =
			    cap ? 2 * cap : (size_t)(S_ISREG(st.st_mode) ? st.st_size : 0) + 4096;
			char *nbuf;

			if (ncap > max + 2)
				ncap = max + 2;
			if (ncap <= cap) {
				r = -EFBIG;
				if (reterr) {
					(void)fail(reterr, path, r, "");
					sm_error_set(reterr, "larger than %zu bytes", max);
				}
				goto out;
			}
			nbuf = grow(buf, len, ncap, flags);
			if (!nbuf) {
				r = -ENOMEM;
				goto out;
			}
			buf = nbuf;
			cap = ncap;
		}
		k = read(fd, buf + len, cap - len - 1);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			r = fail(reterr, path, -errno, "cannot read");
			goto out;
		}
		if (k == 0)
			break;
		len += (size_t)k;
		if (len > max) {
			r = -EFBIG;
			if (reterr) {
				(void)fail(reterr, path, r, "");
				sm_error_set(reterr, "larger than %zu bytes", max);
			}
			goto out;
		}
	}
	if (!buf) {
		buf = malloc(1);
		if (!buf) {
			r = -ENOMEM;
			goto out;
		}
	}
	buf[len] = '\0';
	*ret = buf;
	if (ret_len)
		*ret_len = len;
	buf = NULL;
	r = 0;
out:
	if (buf && (flags & SM_FILE_SECRET))
		wipe(buf, len);
	free(buf);
	close(fd);
	return r;
}

static void chomp(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
		s[--n] = '\0';
}

int sm_secret_read(const char *env, const char *file, size_t max, const char *what, char **ret,
                   struct sm_error *reterr)
{
	struct sm_error e = {0};
	char *buf = NULL;
	int r;

	if (env && *env) {
		const char *v = getenv(env);

		if (!v || !*v) {
			sm_error_set(reterr, "environment variable '%s' (%s_env) is not set", env,
			             what);
			return -ENOENT;
		}
		buf = strdup(v);
		if (!buf)
			return -ENOMEM;
		chomp(buf);
		if (!*buf) {
			free(buf);
			sm_error_set(reterr, "environment variable '%s' (%s_env) is empty", env,
			             what);
			return -EINVAL;
		}
	} else if (file && *file) {
		r = sm_file_read(file, max, SM_FILE_SECRET, &buf, NULL, &e);
		if (r == -ENOMEM)
			return r;
		if (r < 0) {
			sm_error_set(reterr, "%s_file '%s': %s", what, file, e.message);
			return r;
		}
		chomp(buf);
		if (!*buf) {
			free(buf);
			sm_error_set(reterr, "%s_file '%s' is empty", what, file);
			return -EINVAL;
		}
	}
	*ret = buf;
	return 0;
}

static void wipe_free(char *s)
{
	if (s)
		wipe(s, strlen(s));
	free(s);
}

int sm_token_file_refresh(struct sm_token_file *t, size_t max, struct sm_error *reterr)
{
	struct stat st;
	char *buf = NULL;
	size_t n = 0;
	int r;

	if (stat(t->path, &st) != 0)
		return fail(reterr, t->path, -errno, "cannot open");
	if (t->value && st.st_mtim.tv_sec == t->mtime.tv_sec &&
	    st.st_mtim.tv_nsec == t->mtime.tv_nsec && st.st_size == t->size && st.st_ino == t->ino)
		return 0;
	r = sm_file_read(t->path, max, SM_FILE_SECRET, &buf, &n, reterr);
	if (r < 0)
		return r;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	wipe_free(t->value);
	t->value = buf;
	t->mtime = st.st_mtim;
	t->size = st.st_size;
	t->ino = st.st_ino;
	return 0;
}

void sm_token_file_done(struct sm_token_file *t)
{
	wipe_free(t->value);
	t->value = NULL;
}
