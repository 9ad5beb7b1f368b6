/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef P11E_RUNDIR_H
#define P11E_RUNDIR_H

#include <stddef.h>

#include "common/err.h"

/*
 * Paths of the per-user agent: $XDG_RUNTIME_DIR/p11enroll/ holds the
 * socket (agent.sock), the lock (agent.lock) and the log of an agent
 * started by the CLI (agent.log).
 */

/*
 * Writes "$XDG_RUNTIME_DIR/p11enroll" (leaf NULL) or
 * "$XDG_RUNTIME_DIR/p11enroll/<leaf>" into out.  P11E_ERR_NO_RUNTIME_DIR
 * when XDG_RUNTIME_DIR is unset, empty or not absolute;
 * P11E_ERR_TOO_LARGE when the path does not fit (a Unix socket path must
 * fit in 108 bytes: callers pass a buffer of that size for the socket).
 */
enum p11e_err p11e_rundir_path(char *out, size_t outlen, const char *leaf);

/*
 * Makes sure path is a private directory: creates it (and missing
 * parents) 0700 if missing,
 * then checks that it is a real directory (not a symlink) owned by the
 * effective uid; group/other permission bits are removed.
 * P11E_ERR_UNSAFE_PATH if it is not ours or not a directory,
 * P11E_ERR_SYSTEM otherwise (errno kept).  Logs the reason.
 */
enum p11e_err p11e_private_dir_ensure(const char *path);

/*
 * The agent's state directory: $XDG_STATE_HOME/p11enroll, else
 * $HOME/.local/state/p11enroll.  P11E_ERR_CONFIG when neither variable
 * gives an absolute path.
 */
enum p11e_err p11e_state_dir_default(char *out, size_t outlen);

/*
 * Replaces DIR/NAME with the len bytes of data, durably: a temporary
 * file DIR/.NAME.tmp (0600, not through a symlink) written and
 * fsync()ed, renamed over DIR/NAME, then DIR fsync()ed, so that after a
 * crash DIR/NAME is the old file or the new one, whole.
 * P11E_ERR_STORAGE_FULL when the disk is full, P11E_ERR_IO otherwise
 * (errno kept, the temporary file removed).  Logs nothing.
 */
enum p11e_err p11e_file_replace(
    const char *dir, const char *name, const void *data, size_t len);

#endif /* P11E_RUNDIR_H */
