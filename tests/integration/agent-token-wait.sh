#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# WAITING_TOKEN (issue 7 item 4, issue 5 item 6): the agent dies once the
# issued certificate is journaled, before the token write; the token is
# then taken away (its SoftHSM2 directory moved) and another token with
# the same label but another serial put in its place.  enroll --resume
# cannot write: the credential waits in WAITING_TOKEN with a message
# naming the token and its serial; the other token is never touched
# (polls go on for several seconds); once the right token is back the
# agent finishes the enrollment by itself (the service's token URI names
# a PIN file): exactly one key pair and one certificate on it, one
# certificate issued by the RA.  The udev monitor runs only while the
# credential waits.

. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/softhsm.sh"
. "$top_srcdir/tests/lib/agent.sh"
. "$top_srcdir/tests/lib/ra.sh"
. "$top_srcdir/tests/lib/enroll.sh"
. "$top_srcdir/tests/lib/cred.sh"

cred_require

tap_plan 12

cred_setup p11e-wait 'Pin-TokenWait-41b7e2'
cat >"$P11ENROLL_CONF" <<EOF2
[service ra]
url = $URL
server-pin = $SPIN
token = $TOK?pin-source=file:$T/pin
EOF2

printf '%s\n%s\n%s\n' "$PIN" "$PW" "$(en_otp S0001)" |
    P11ENROLL_CRASHPOINT=enroll-after-cert-journaled "$P11ENROLL" enroll \
    --service ra --token "$TOK" --contract-id "$C" --user-id S0001 \
    --secrets-stdin >"$T/crash.out" 2>&1
rc=$?
cat "$T/crash.out" >&2
agent_stop
CRED=$(ls "$XDG_STATE_HOME/p11enroll/credentials" | sed -n 's/\.json$//p')
state=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["state"])' \
    "$XDG_STATE_HOME/p11enroll/credentials/$CRED.json" 2>/dev/null)
tap_check "the agent died with the certificate journaled (ISSUED)" sh -c \
    "test $rc != 0 && test -n '$CRED' && test '$state' = ISSUED"

# the token goes; another with the same label and PIN comes in its place
mkdir "$T/away"
mv "$SOFTHSM_DIR/tokens/"* "$T/away/"
softhsm2-util --init-token --free --label p11e-wait --pin "$PIN" \
    --so-pin 12345678 >/dev/null 2>&1 || tap_bail "second token"
OTHER=$(softhsm2-util --show-slots 2>/dev/null |
    sed -n 's/^[[:space:]]*Serial number:[[:space:]]*//p' | grep -v "^$SERIAL\$" | head -n 1)
tap_check "another token p11e-wait, serial $OTHER (not $SERIAL)" \
    test -n "$OTHER" -a "$OTHER" != "$SERIAL"

printf '%s\n' "$PIN" | "$P11ENROLL" enroll --resume "$CRED" --secrets-stdin \
    >"$T/resume.out" 2>&1
rc=$?
cat "$T/resume.out" >&2
tap_check "resume cannot write: it names the token to insert" sh -c \
    "test $rc != 0 && grep -q \"insert the token 'p11e-wait' (serial $SERIAL)\" '$T/resume.out'"
tap_check "the credential is WAITING_TOKEN (step ISSUED)" sh -c \
    "test '$(cred_field "$CRED" state)' = WAITING_TOKEN && test '$(cred_field "$CRED" step)' = ISSUED"
tap_check "list says which token to insert" sh -c \
    "'$P11ENROLL' list | grep -q \"insert the token 'p11e-wait' (serial $SERIAL)\""
# several polls go by
sleep 7
tap_check "the other token is untouched (no object written)" test \
    "$(en_count "pkcs11:serial=$OTHER" private-key)/$(en_count "pkcs11:serial=$OTHER" certificate)/$(en_count "pkcs11:serial=$OTHER" ca)" = 0/0/0
tap_check "still WAITING_TOKEN" test "$(cred_field "$CRED" state)" = WAITING_TOKEN

# the right token back, beside the other one
mv "$T/away/"* "$SOFTHSM_DIR/tokens/"
cred_wait "$CRED" state INSTALLED 30
tap_check "the right token back: the agent finishes by itself (INSTALLED)" \
    test "$(cred_field "$CRED" state)" = INSTALLED
tap_check "exactly one key pair and one certificate on it" test \
    "$(en_count "pkcs11:serial=$SERIAL" private-key)/$(en_count "pkcs11:serial=$SERIAL" public-key)/$(en_count "pkcs11:serial=$SERIAL" certificate)" = 1/1/1
tap_check "the other token still has nothing" test \
    "$(en_count "pkcs11:serial=$OTHER" private-key)/$(en_count "pkcs11:serial=$OTHER" certificate)" = 0/0
tap_check "the RA issued one certificate" \
    test "$(en_ra_serial S0001 | wc -l)" = 1
tap_check "the log says the token is back" \
    grep -q "$CRED: the token is back: the certificate is written" "$LOG"
tap_done
