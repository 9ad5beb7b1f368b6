/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <locale.h>
#include <stdlib.h>

#include "common/i18n.h"

void
p11e_i18n_init(const char *domain)
{
	const char *dir = getenv("P11ENROLL_LOCALEDIR");

	if (dir == NULL || dir[0] != '/')
		dir = LOCALEDIR;
	(void)setlocale(LC_MESSAGES, "");
	(void)bindtextdomain(domain, dir);
	(void)bind_textdomain_codeset(domain, "UTF-8");
	(void)textdomain(domain);
}
