#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# tests/lib/softhsm.sh: a fresh token in a private directory, visible
# through p11-kit-proxy, and gone when the test exits.

. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/softhsm.sh"

command -v softhsm2-util >/dev/null 2>&1 ||
    tap_skip_all "softhsm2-util not installed (Debian package softhsm2)"
command -v pkcs11-tool >/dev/null 2>&1 ||
    tap_skip_all "pkcs11-tool not installed (Debian package opensc)"

tap_plan 9

tap_check "softhsm_setup initialises a token" softhsm_setup p11e-fixture
tap_check "SOFTHSM2_CONF is private" \
    [ "$SOFTHSM2_CONF" = "$SOFTHSM_DIR/softhsm2.conf" ]
tap_check "token directory holds the new token" \
    [ -n "$(ls "$SOFTHSM_DIR/tokens")" ]
tap_check "serial is 16 hex digits" \
    eval 'printf "%s\n" "$SOFTHSM_SERIAL" | grep -Eqx "[0-9a-f]{16}"'

proxy=$(pkg-config --variable=proxy_module p11-kit-1 2>/dev/null)
[ -r "$proxy" ] || proxy=$(ls /usr/lib/*/p11-kit-proxy.so 2>/dev/null | head -n 1)

# The token is seen both directly and through the p11-kit proxy.
for m in "$SOFTHSM_MODULE" "$proxy"; do
	out=$(pkcs11-tool --module "$m" -L 2>&1)
	printf '%s\n' "$out" >&2
	tap_check "$(basename "$m") lists our token's serial" eval \
	    'printf "%s\n" "$out" | grep -q "serial num *: $SOFTHSM_SERIAL"'
done

tap_check "user PIN logs in" pkcs11-tool --module "$SOFTHSM_MODULE" \
    --token-label p11e-fixture --login --pin "$SOFTHSM_PIN" -O
tap_check "wrong PIN is refused" eval '! pkcs11-tool --module \
    "$SOFTHSM_MODULE" --token-label p11e-fixture --login --pin 9999 -O'

# The cleanup runs at exit: check it from a child shell.
dir=$(sh -c '. "$top_srcdir/tests/lib/tap.sh"
	. "$top_srcdir/tests/lib/softhsm.sh"
	softhsm_setup >&2 && echo "$SOFTHSM_DIR"')
tap_check "the token directory is removed at exit" \
    eval '[ -n "$dir" ] && [ ! -e "$dir" ]'

tap_done
