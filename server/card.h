/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef P11E_CARD_H
#define P11E_CARD_H

/*
 * The customer card (お客様カード): a grid of kana labels, each with a
 * random 2-digit number, printed for the contract and asked for in the
 * administrator's grid challenge (two labels, e.g. オ and ウ, answered
 * with their numbers).  In memory and sealed in the database the card
 * is P11E_CARD_CELLS pairs of ASCII digits in label order, in a struct
 * p11e_secret.
 */

#include <stddef.h>

#include "common/err.h"
#include "common/secret.h"

#define P11E_CARD_ROWS 7
#define P11E_CARD_COLS 5
#define P11E_CARD_CELLS (P11E_CARD_ROWS * P11E_CARD_COLS)

/* The label of cell i (UTF-8 katakana, "ア" ... "モ"); NULL out of range. */
const char *p11e_card_label(size_t i);

/* The cell of a label, or -1 when it is not on the card. */
int p11e_card_index(const char *label);

/* A new card from the CSPRNG (free with p11e_secret_free). */
enum p11e_err p11e_card_new(struct p11e_secret **card);

/*
 * Copies the 2 digits of cell i of card into out (NUL-terminated).
 * P11E_ERR_PARSE for a card of the wrong size.
 */
enum p11e_err
p11e_card_value(const struct p11e_secret *card, size_t i, char out[3]);

#endif /* P11E_CARD_H */
