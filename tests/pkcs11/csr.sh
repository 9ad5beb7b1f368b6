#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Runs tests/pkcs11/test-csr (cmocka, TAP output): p11e_token_csr() on a
# fresh SoftHSM2 token, signing through libp11 on p11-kit-proxy.

. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/softhsm.sh"

prog=$top_builddir/tests/pkcs11/test-csr
[ -x "$prog" ] || tap_bail "$prog not built"
command -v softhsm2-util >/dev/null 2>&1 ||
    tap_skip_all "softhsm2-util not installed (Debian package softhsm2)"

softhsm_setup p11e-csr "Pin-canary-2342" >&2 ||
    tap_bail "cannot create a SoftHSM2 token"
CMOCKA_MESSAGE_OUTPUT=TAP
export CMOCKA_MESSAGE_OUTPUT

# Not exec: the EXIT trap removes the token directory.
"$prog"
