/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/rundir.h"

static enum p11e_err
join(char *out, size_t outlen, const char *a, const char *b, const char *c)
{
	int n;

	n = snprintf(out, outlen, "%s%s%s%s%s", a, b ? "/" : "", b ? b : "",
	    c ? "/" : "", c ? c : "");
	if (n < 0 || (size_t)n >= outlen)
		return P11E_ERR_TOO_LARGE;
	return P11E_OK;
}

enum p11e_err
p11e_rundir_path(char *out, size_t outlen, const char *leaf)
{
	const char *base = getenv("XDG_RUNTIME_DIR");

	if (outlen > 0)
		out[0] = '\0';
	if (base == NULL || base[0] != '/')
		return P11E_ERR_NO_RUNTIME_DIR;
	return join(out, outlen, base, "p11enroll", leaf);
}

/* Creates the missing parents of path (0700, as XDG asks for its dirs). */
static void
make_parents(const char *path)
{
	char tmp[4096];
	size_t len = strlen(path), i;

	if (len >= sizeof(tmp))
		return;
	memcpy(tmp, path, len + 1);
	for (i = 1; i < len; i++) {
		if (tmp[i] != '/')
			continue;
		tmp[i] = '\0';
		(void)mkdir(tmp, 0700);
		tmp[i] = '/';
	}
}

enum p11e_err
p11e_private_dir_ensure(const char *path)
{
	struct stat st;

	make_parents(path);
	if (mkdir(path, 0700) != 0 && errno != EEXIST) {
		p11e_error("cannot create %s: %s", path, strerror(errno));
		return P11E_ERR_SYSTEM;
	}
	if (lstat(path, &st) != 0) {
		p11e_error("cannot inspect %s: %s", path, strerror(errno));
		return P11E_ERR_SYSTEM;
	}
	if (!S_ISDIR(st.st_mode)) {
		p11e_error("%s is not a directory", path);
		return P11E_ERR_UNSAFE_PATH;
	}
	if (st.st_uid != geteuid()) {
		p11e_error("%s belongs to uid %u, not to uid %u", path,
		    (unsigned int)st.st_uid, (unsigned int)geteuid());
		return P11E_ERR_UNSAFE_PATH;
	}
	if ((st.st_mode & 077) != 0 && chmod(path, 0700) != 0) {
		p11e_error("cannot make %s private: %s", path, strerror(errno));
		return P11E_ERR_SYSTEM;
	}
	return P11E_OK;
}

enum p11e_err
p11e_state_dir_default(char *out, size_t outlen)
{
	const char *state = getenv("XDG_STATE_HOME");
	const char *home = getenv("HOME");

	if (outlen > 0)
		out[0] = '\0';
	if (state != NULL && state[0] == '/')
		return join(out, outlen, state, "p11enroll", NULL);
	if (home != NULL && home[0] == '/')
		return join(out, outlen, home, ".local/state", "p11enroll");
	return P11E_ERR_CONFIG;
}

static enum p11e_err
io_err(void)
{
	return errno == ENOSPC || errno == EDQUOT ? P11E_ERR_STORAGE_FULL
						  : P11E_ERR_IO;
}

enum p11e_err
p11e_file_replace(
    const char *dir, const char *name, const void *data, size_t len)
{
	char path[4400], tmp[4400];
	const unsigned char *p = data;
	enum p11e_err err = P11E_OK;
	int fd, dfd, saved;
	ssize_t n;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >=
		sizeof(path) ||
	    (size_t)snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name) >=
		sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return P11E_ERR_IO;
	}
	fd = open(
	    tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return io_err();
	while (len > 0 && err == P11E_OK) {
		n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			err = io_err();
			break;
		}
		p += n;
		len -= (size_t)n;
	}
	if (err == P11E_OK && fsync(fd) != 0)
		err = io_err();
	saved = errno;
	if (close(fd) != 0 && err == P11E_OK) {
		err = io_err();
		saved = errno;
	}
	if (err == P11E_OK && rename(tmp, path) != 0) {
		err = io_err();
		saved = errno;
	}
	if (err != P11E_OK) {
		(void)unlink(tmp);
		errno = saved;
		return err;
	}
	/* the rename itself is durable once the directory is synced */
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return P11E_ERR_IO;
	if (fsync(dfd) != 0)
		err = P11E_ERR_IO;
	saved = errno;
	close(dfd);
	errno = saved;
	return err;
}
