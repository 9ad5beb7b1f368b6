/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

/*
 * fuzz_journal: any bytes as a credential record (a file in the state
 * directory that a crash, a full disk or a person may have damaged).  A
 * parse either fails with JournalCorrupt and a sentence, or succeeds and
 * the record encodes and parses back to the same state; the recovery
 * decision is defined for every parsed record.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/journal.h"
#include "common/ipc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	struct p11e_cred c, again;
	struct p11e_buf text;
	char detail[512] = "";
	enum p11e_err err;

	if (!ready) {
		p11e_ipc_json_init();
		ready = 1;
	}
	p11e_cred_init(&c);
	err = p11e_journal_parse(data, size, &c, detail, sizeof(detail));
	if (err != P11E_OK) {
		if (err != P11E_ERR_JOURNAL_CORRUPT || detail[0] == '\0')
			abort();
		p11e_cred_clear(&c);
		return 0;
	}
	if (p11e_cred_next_step(&c) > P11E_STEP_OPERATOR)
		abort();
	p11e_buf_init(&text, 4 * P11E_JOURNAL_FILE_MAX);
	p11e_cred_init(&again);
	if (p11e_journal_encode(&c, &text) != P11E_OK ||
	    p11e_journal_parse(text.data, text.len, &again, detail,
		sizeof(detail)) != P11E_OK ||
	    again.state != c.state || again.idlen != c.idlen ||
	    memcmp(again.id, c.id, c.idlen) != 0 ||
	    again.csr.len != c.csr.len || again.cert.len != c.cert.len)
		abort();
	p11e_buf_clear(&text);
	p11e_cred_clear(&again);
	p11e_cred_clear(&c);
	return 0;
}
