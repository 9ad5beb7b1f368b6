/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <errno.h>
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
