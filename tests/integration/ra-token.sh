#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# p11enroll-ra with its CA key on a PKCS#11 token (SoftHSM2): init
# generates the key there, the PIN comes from a pin-source file, and the
# CA signs on the token (its self-signed certificate, the CRL).

. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/softhsm.sh"
. "$top_srcdir/tests/lib/ra.sh"

command -v softhsm2-util >/dev/null 2>&1 ||
    tap_skip_all "softhsm2-util not installed (Debian package softhsm2)"

tap_plan 7
tap_tmpdir T
softhsm_setup p11e-ra-ca >&2 || tap_bail "SoftHSM token set-up failed"
printf '%s\n' "$SOFTHSM_PIN" >"$T/pin"
chmod 600 "$T/pin"
URI="pkcs11:token=p11e-ra-ca;serial=$SOFTHSM_SERIAL?pin-source=file:$T/pin"

tap_check "init with --ca-key-uri" "$RA" init "$T/ra" --ca-key-uri "$URI"
tap_check "no CA key file" test ! -e "$T/ra/ca.key"
tap_check "ra.conf has key-uri with the key's id and the pin-source" sh -c \
    "grep -q '^key-uri = pkcs11:token=p11e-ra-ca;serial=$SOFTHSM_SERIAL;id=%[0-9a-f][0-9a-f]' '$T/ra/ra.conf' && grep -q 'pin-source=file:$T/pin' '$T/ra/ra.conf' && ! grep -q '$SOFTHSM_PIN\$' '$T/ra/ra.conf'"
tap_check "the self-signed CA certificate verifies (signed on the token)" \
    openssl verify -CAfile "$T/ra/ca.crt" "$T/ra/ca.crt"
tap_check "the private key is on the token, sensitive" sh -c \
    "pkcs11-tool --module '$SOFTHSM_MODULE' --token-label p11e-ra-ca --login --pin '$SOFTHSM_PIN' -O 2>/dev/null | grep -A8 'Private Key' | grep -q 'sensitive'"
tap_check "crl signs on the token" sh -c \
    "'$RA' -d '$T/ra' crl >'$T/crl.pem'"
tap_check "the CRL verifies with the CA" \
    openssl crl -in "$T/crl.pem" -CAfile "$T/ra/ca.crt" -noout
tap_done
