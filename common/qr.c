/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>

#include <qrencode.h>

#include "common/qr.h"
#include "common/secret.h"

void
p11e_qr_print(const char *text)
{
	QRcode *qr = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
	int x, y, w;

	if (qr == NULL)
		return;
	w = qr->width;
	/* two rows per line with half blocks, a quiet zone of 2 */
	for (y = -2; y < w + 2; y += 2) {
		printf("  ");
		for (x = -2; x < w + 2; x++) {
			bool top = y >= 0 && y < w && x >= 0 && x < w &&
			    (qr->data[y * w + x] & 1);
			bool bot = y + 1 >= 0 && y + 1 < w && x >= 0 && x < w &&
			    (qr->data[(y + 1) * w + x] & 1);

			/* dark modules as spaces on a light block */
			if (top && bot)
				printf(" ");
			else if (top)
				printf("\u2584");
			else if (bot)
				printf("\u2580");
			else
				printf("\u2588");
		}
		printf("\n");
	}
	p11e_wipe(qr->data, (size_t)w * (size_t)w);
	QRcode_free(qr);
}
