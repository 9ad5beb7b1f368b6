/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <string.h>

#include <openssl/rand.h>

#include "server/card.h"

static const char *const labels[P11E_CARD_CELLS] = {
	"ア", "イ", "ウ", "エ", "オ", /* a row */
	"カ", "キ", "ク", "ケ", "コ", /* ka row */
	"サ", "シ", "ス", "セ", "ソ", /* sa row */
	"タ", "チ", "ツ", "テ", "ト", /* ta row */
	"ナ", "ニ", "ヌ", "ネ", "ノ", /* na row */
	"ハ", "ヒ", "フ", "ヘ", "ホ", /* ha row */
	"マ", "ミ", "ム", "メ", "モ", /* ma row */
};

const char *
p11e_card_label(size_t i)
{
	return i < P11E_CARD_CELLS ? labels[i] : NULL;
}

int
p11e_card_index(const char *label)
{
	size_t i;

	for (i = 0; i < P11E_CARD_CELLS; i++)
		if (strcmp(labels[i], label) == 0)
			return (int)i;
	return -1;
}

enum p11e_err
p11e_card_new(struct p11e_secret **card)
{
	struct p11e_secret *c;
	unsigned char r;
	char d[2];
	size_t i;

	*card = NULL;
	if ((c = p11e_secret_new(2 * P11E_CARD_CELLS)) == NULL)
		return P11E_ERR_NOMEM;
	for (i = 0; i < P11E_CARD_CELLS; i++) {
		/* 00..99 without modulo bias: reject 200..255 */
		do {
			if (RAND_bytes(&r, 1) != 1) {
				p11e_secret_free(c);
				return P11E_ERR_CRYPTO;
			}
		} while (r >= 200);
		r %= 100;
		d[0] = (char)('0' + r / 10);
		d[1] = (char)('0' + r % 10);
		(void)p11e_secret_append(c, d, 2);
	}
	p11e_wipe(d, sizeof(d));
	r = 0;
	*card = c;
	return P11E_OK;
}

enum p11e_err
p11e_card_value(const struct p11e_secret *card, size_t i, char out[3])
{
	out[0] = '\0';
	if (p11e_secret_len(card) != 2 * P11E_CARD_CELLS ||
	    i >= P11E_CARD_CELLS)
		return P11E_ERR_PARSE;
	memcpy(out, p11e_secret_data(card) + 2 * i, 2);
	out[2] = '\0';
	return P11E_OK;
}
