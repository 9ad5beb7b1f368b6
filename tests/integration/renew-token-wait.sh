#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# WAITING_TOKEN during a renewal (issue 7 item 4): the RA's window opens
# and two thirds of the lifetime are past 10 s after issuance ([policy]
# validity = 90 s, renew-before = 90 s, backdate = 50 s); before that the
# token is taken away (its SoftHSM2 directory moved) and another with the
# same label but another serial put in its place.  The agent's renewal
# waits in WAITING_TOKEN naming the token and its serial, the other token
# is not touched; with the right token back the renewal finishes by
# itself: a new certificate, the old pair removed after the grace period
# (1 s), one key pair and one certificate on the token.

. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/softhsm.sh"
. "$top_srcdir/tests/lib/agent.sh"
. "$top_srcdir/tests/lib/ra.sh"
. "$top_srcdir/tests/lib/enroll.sh"
. "$top_srcdir/tests/lib/cred.sh"

cred_require

tap_plan 9

cred_setup p11e-rwait 'Pin-RenewWait-5c81d0' \
    "[policy]" "validity = 90" "renew-before = 90" "backdate = 50"
cat >"$P11ENROLL_CONF" <<EOF
[service ra]
url = $URL
server-pin = $SPIN
token = $TOK?pin-source=file:$T/pin
grace-period = 1
EOF

C1=$(cred_enroll S0001 ra "$TOK")
tap_check "enrolled" test -n "$C1"
[ -n "$C1" ] || tap_bail "enrollment failed"
SER1=$(cred_field "$C1" serial)
# the token goes, another with the same label comes
mkdir "$T/away"
mv "$SOFTHSM_DIR/tokens/"* "$T/away/"
softhsm2-util --init-token --free --label p11e-rwait --pin "$PIN" \
    --so-pin 12345678 >/dev/null 2>&1 || tap_bail "second token"
OTHER=$(softhsm2-util --show-slots 2>/dev/null |
    sed -n 's/^[[:space:]]*Serial number:[[:space:]]*//p' | grep -v "^$SERIAL\$" | head -n 1)
# from now on the RA issues 1-hour certificates: one renewal only
cred_ra_restart "[policy]" "validity = 3600" "renew-before = 90" \
    "backdate = 50" || tap_bail "serve did not restart"

cred_wait "$C1" state WAITING_TOKEN 40
tap_check "the renewal waits for the token (WAITING_TOKEN)" \
    test "$(cred_field "$C1" state)" = WAITING_TOKEN
cred_field "$C1" last_error.message >"$T/msg"
tap_check "naming the token and its serial" \
    grep -q "insert the token 'p11e-rwait' (serial $SERIAL)" "$T/msg"
tap_check "the log says it once" \
    test "$(grep -c "$C1: renewal: insert the token" "$LOG")" = 1
sleep 5
tap_check "the other token is untouched" test \
    "$(en_count "pkcs11:serial=$OTHER" private-key)/$(en_count "pkcs11:serial=$OTHER" certificate)" = 0/0

mv "$T/away/"* "$SOFTHSM_DIR/tokens/"
end=$(($(date +%s) + 30))
while [ "$(cred_field "$C1" serial)" = "$SER1" ] && [ "$(date +%s)" -lt $end ]; do
	sleep 0.5
done
tap_check "the right token back: renewed by itself" sh -c \
    "test '$(cred_field "$C1" state)' = INSTALLED && test '$(cred_field "$C1" serial)' != '$SER1'"
cred_wait "$C1" old_id "" 20
tap_check "the old pair removed after the grace period" \
    test -z "$(cred_field "$C1" old_id)"
tap_check "one key pair and one certificate on the token" test \
    "$(en_count "pkcs11:serial=$SERIAL" private-key)/$(en_count "pkcs11:serial=$SERIAL" public-key)/$(en_count "pkcs11:serial=$SERIAL" certificate)" = 1/1/1
tap_check "the other token still has nothing" test \
    "$(en_count "pkcs11:serial=$OTHER" private-key)/$(en_count "pkcs11:serial=$OTHER" certificate)" = 0/0
tap_done
