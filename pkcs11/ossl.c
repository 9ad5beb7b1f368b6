/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <openssl/err.h>

#include "common/log.h"
#include "pkcs11/token-private.h"

void
p11e_log_openssl(const char *what)
{
	unsigned long e;
	char buf[256];
	int n = 0;

	while ((e = ERR_get_error()) != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		p11e_error("%s: %s", what, buf);
		n++;
	}
	if (n == 0)
		p11e_error("%s failed", what);
}
