/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

/*
 * fuzz_pkcs7_certs_only and the other readers of what an enrollment
 * server sends: any bytes as a base64 certs-only PKCS#7, a problem+json
 * body and a Retry-After value.  Nothing may crash; a parsed PKCS#7 has
 * 1 to P11E_EST_CERTS_MAX certificates.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "agent/est.h"
#include "common/ipc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	STACK_OF(X509) *certs = NULL;
	char detail[512], value[128];
	uint64_t delay;

	if (!ready) {
		p11e_ipc_json_init();
		ready = 1;
	}
	if (p11e_est_certs_only(data, size, &certs, detail, sizeof(detail)) ==
	    P11E_OK) {
		if (sk_X509_num(certs) < 1 ||
		    sk_X509_num(certs) > P11E_EST_CERTS_MAX)
			abort();
		sk_X509_pop_free(certs, X509_free);
	}
	(void)p11e_est_problem(400, "application/problem+json", data, size,
	    detail, sizeof(detail));
	if (memchr(detail, '\0', sizeof(detail)) == NULL)
		abort();
	if (size < sizeof(value)) {
		memcpy(value, data, size);
		value[size] = '\0';
		if (p11e_est_retry_after(value, 1700000000, 600, &delay) ==
			P11E_OK &&
		    delay > 600)
			abort();
	}
	return 0;
}
