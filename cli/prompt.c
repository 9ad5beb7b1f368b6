/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/i18n.h"
#include "common/log.h"

/* The terminal to restore if a signal comes while echo is off. */
static int tty_fd = -1;
static struct termios tty_saved;

static void
restore_and_die(int sig)
{
	if (tty_fd >= 0)
		(void)tcsetattr(tty_fd, TCSAFLUSH, &tty_saved);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Reads one line from fd into s, byte by byte (no stdio copy). */
static enum p11e_err
read_line(int fd, struct p11e_secret *s)
{
	unsigned char c;
	enum p11e_err err = P11E_OK;
	ssize_t n;

	while ((n = read(fd, &c, 1)) == 1 || (n < 0 && errno == EINTR)) {
		if (n < 0)
			continue;
		if (c == '\n')
			break;
		if (c == '\r')
			continue;
		if (err == P11E_OK)
			err = p11e_secret_append(s, &c, 1);
	}
	c = 0;
	if (n < 0)
		return P11E_ERR_IO;
	return err;
}

enum p11e_err
p11e_cli_read_secret(
    const char *prompt, bool from_stdin, struct p11e_secret **out)
{
	struct sigaction sa, old_int, old_term, old_hup;
	struct p11e_secret *s;
	struct termios t;
	enum p11e_err err;
	int fd;

	*out = NULL;
	if ((s = p11e_secret_new(P11E_CLI_SECRET_MAX)) == NULL)
		return P11E_ERR_NOMEM;
	if (from_stdin) {
		err = read_line(0, s);
		goto out;
	}
	fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		p11e_error(
		    _("no terminal to ask for the PIN: use pin-source= in "
		      "the URI or --pin-stdin"));
		err = P11E_ERR_PIN_REQUIRED;
		goto out;
	}
	if (tcgetattr(fd, &tty_saved) != 0) {
		close(fd);
		p11e_error(_("cannot turn off echo on the terminal: %s"),
		    strerror(errno));
		err = P11E_ERR_SYSTEM;
		goto out;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = restore_and_die;
	sigaction(SIGINT, &sa, &old_int);
	sigaction(SIGTERM, &sa, &old_term);
	sigaction(SIGHUP, &sa, &old_hup);
	tty_fd = fd;
	t = tty_saved;
	t.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK | ECHONL);
	t.c_lflag |= ICANON;
	(void)write(fd, prompt, strlen(prompt));
	if (tcsetattr(fd, TCSAFLUSH, &t) != 0) {
		err = P11E_ERR_SYSTEM;
	} else {
		err = read_line(fd, s);
		(void)tcsetattr(fd, TCSAFLUSH, &tty_saved);
	}
	tty_fd = -1;
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	sigaction(SIGHUP, &old_hup, NULL);
	(void)write(fd, "\n", 1);
	close(fd);
out:
	if (err == P11E_ERR_TOO_LARGE)
		p11e_error(_("longer than %d bytes"), P11E_CLI_SECRET_MAX);
	if (err == P11E_OK && p11e_secret_len(s) == 0) {
		p11e_error(_("nothing was entered"));
		err = P11E_ERR_PIN_REQUIRED;
	}
	if (err != P11E_OK) {
		p11e_secret_free(s);
		return err;
	}
	*out = s;
	return P11E_OK;
}
