#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Runs tests/p11fault/test-p11fault (cmocka, TAP output) against the
# built p11fault.so, forwarding to a fresh SoftHSM2 token.

. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/softhsm.sh"

module=$top_builddir/tests/p11fault/p11fault.so
prog=$top_builddir/tests/p11fault/test-p11fault
[ -r "$module" ] || tap_bail "$module not built"
[ -x "$prog" ] || tap_bail "$prog not built"
command -v softhsm2-util >/dev/null 2>&1 ||
    tap_skip_all "softhsm2-util not installed (Debian package softhsm2)"

# A PIN that cannot appear in a log line by accident.
softhsm_setup p11fault-test "Pin-canary-4711" >&2 ||
    tap_bail "cannot create a SoftHSM2 token"
tap_tmpdir P11FAULT_DIR
P11FAULT_CONF=$P11FAULT_DIR/p11fault.conf
P11FAULT_MODULE=$module
CMOCKA_MESSAGE_OUTPUT=TAP
export P11FAULT_DIR P11FAULT_CONF P11FAULT_MODULE CMOCKA_MESSAGE_OUTPUT

# Not exec: the EXIT trap removes the token and scratch directories.
"$prog"
