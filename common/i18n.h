/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef P11E_I18N_H
#define P11E_I18N_H

#include <libintl.h>

/*
 * Messages for people go through _() (or N_() where a table holds them
 * and _() is applied at use); the catalogues are in po/ (doc/HACKING.md
 * "Translations").  Protocol text, log keys and error names are never
 * translated.
 */
#define _(s) gettext(s)
#define N_(s) (s)

/*
 * Sets LC_MESSAGES (only: numbers and character classes stay "C") from
 * the environment and binds the text domain (the program's: "p11enroll"
 * for the agent and the command, "p11enroll-ra" for the RA) to the
 * installed catalogues, or to P11ENROLL_LOCALEDIR when that is an
 * absolute path (the build tree's, for the tests).  Messages are UTF-8.
 */
void p11e_i18n_init(const char *domain);

#endif /* P11E_I18N_H */
