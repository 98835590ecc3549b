/* SPDX-License-Identifier: MIT */
#ifndef SM_FILE_H
#define SM_FILE_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "scalemetrics/error.h"

/* Reading small files whole: the config file, certificates, CA bundles, tokens, kubeconfigs,
 * secrets. Errors name the file in reterr->file and say what failed in reterr->message
 * ("cannot open: No such file or directory", "larger than 65536 bytes", "not a regular
 * file"), so sm_error_format() prints "PATH: cannot open: ...". */

enum {
	SM_FILE_REGULAR = 1 << 0, /* refuse anything but a regular file (-EINVAL) */
	SM_FILE_SECRET = 1 << 1,  /* keys, tokens, passwords: no copy is left behind in freed
	                           * memory (growth copies and wipes; failures wipe) */
};

/* Reads the whole of path into a NUL-terminated malloc'ed buffer (*ret; its length without
 * the NUL in *ret_len when not NULL). At most max bytes: a larger file is -EFBIG, also one
 * that grows past max while it is read. -errno on failure; *ret untouched then. */
int sm_file_read(const char *path, size_t max, unsigned flags, char **ret, size_t *ret_len,
                 struct sm_error *reterr) SM_MUSTCHECK;

/* A secret given either by an environment variable (env, its name) or by a file: the
 * `password_env`/`password_file`, `dsn_env`/`dsn_file` pairs of the config. env wins when
 * both are set. Trailing CR/LF bytes are dropped (an editor's or `echo`'s newline); an empty
 * result is an error; the file is read with SM_FILE_SECRET. what names the pair in messages
 * ("password" -> "password_file
 * '/x' is empty"). Neither set: *ret = NULL and 0. -ENOENT (variable not set), -EINVAL
 * (empty), -EFBIG (file over max bytes), -errno, -ENOMEM. */
int sm_secret_read(const char *env, const char *file, size_t max, const char *what, char **ret,
                   struct sm_error *reterr) SM_MUSTCHECK;

/* A file re-read whenever it changes (mtime, size or inode): a bearer token the kubelet
 * rotates under a projected volume. Zero-initialise, set path (borrowed). Not locked: the
 * caller serialises. */
struct sm_token_file {
	const char *path;
	char *value; /* the contents without trailing white space; NULL until first read */
	struct timespec mtime;
	off_t size;
	ino_t ino;
};

/* Reads the file when it is new or changed since the last read. 0: value is current (it
 * may be ""); -errno with reterr as sm_file_read's (the last value is kept); -EFBIG past
 * max bytes. */
int sm_token_file_refresh(struct sm_token_file *t, size_t max,
                          struct sm_error *reterr) SM_MUSTCHECK;
/* Wipes and frees the value. */
void sm_token_file_done(struct sm_token_file *t);

#endif
