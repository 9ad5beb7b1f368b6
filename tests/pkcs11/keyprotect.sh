#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Runs tests/pkcs11/test-keyprotect (cmocka, TAP output) against a fresh
# SoftHSM2 token reached through p11-kit's registered modules.

. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/softhsm.sh"

prog=$top_builddir/tests/pkcs11/test-keyprotect
[ -x "$prog" ] || tap_bail "$prog not built"
command -v softhsm2-util >/dev/null 2>&1 ||
    tap_skip_all "softhsm2-util not installed (Debian package softhsm2)"

softhsm_setup p11e-keyprotect "Pin-canary-0815" >&2 ||
    tap_bail "cannot create a SoftHSM2 token"
CMOCKA_MESSAGE_OUTPUT=TAP
export CMOCKA_MESSAGE_OUTPUT

# Not exec: the EXIT trap removes the token directory.
"$prog"
