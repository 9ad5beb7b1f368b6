/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef P11E_QR_H
#define P11E_QR_H

/*
 * A QR code on the terminal (the otpauth:// URI of a new OTP token for an
 * authenticator app), shared by p11enroll-ra and p11enroll.  The only
 * includer of libqrencode; built as its own small library so that only
 * the programs that print one link it.
 */

/*
 * Prints text as a QR code (error correction M) to stdout with Unicode
 * half blocks, two rows per line and a quiet zone.  The module data is
 * wiped afterwards (text may hold a secret).  Prints nothing when the
 * text does not fit a QR code.
 */
void p11e_qr_print(const char *text);

#endif /* P11E_QR_H */
