#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Unattended enrollment for scripted roll-outs: the token's PIN from a PIN
# file named in the token URI (pin-source=file:...) serves every step —
# the key and, after the password and one-time password from standard
# input, the request and the token write; a wrong PIN in the file is
# refused once with nothing left on the token.  Without --token the one
# token that can take a key is chosen (SoftHSM2's empty slot is none).

. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/softhsm.sh"
. "$top_srcdir/tests/lib/agent.sh"
. "$top_srcdir/tests/lib/ra.sh"
. "$top_srcdir/tests/lib/enroll.sh"

for c in softhsm2-util oathtool python3 sqlite3 openssl curl; do
	command -v $c >/dev/null 2>&1 || tap_skip_all "$c not installed"
done

tap_plan 8

tap_tmpdir T
agent_env "$T"
PIN='Pin-Unattended-8d2e61'
softhsm_setup p11e-unatt "$PIN" >&2 || tap_bail "cannot create a SoftHSM2 token"
TOK=pkcs11:token=p11e-unatt
en_ra_start || { cat "$T/ra.log" >&2; tap_bail "p11enroll-ra serve did not start"; }
en_user S0001 || tap_bail "user add failed"
en_user S0002 || tap_bail "user add failed"
printf '%s\n' "$PIN" >"$T/pin"
chmod 0600 "$T/pin"

# the PIN file serves all steps: only the password and the OTP on stdin
printf '%s\n%s\n' "$PW" "$(en_otp S0001)" |
    "$P11ENROLL" enroll --invitation "$T/S0001.inv" \
    --token "$TOK?pin-source=file:$T/pin" --secrets-stdin >"$T/u1.out" 2>&1
rc=$?
cat "$T/u1.out" >&2
tap_check "enroll with the PIN from a pin-source file: exit 0" [ "$rc" = 0 ]
# objects: "KEYS CERTS" on the token
objects()
{
	echo "$(en_count "$TOK" private-key) $(en_count "$TOK" certificate)"
}
tap_check "... the certificate on the token (one key pair, one certificate)" \
    [ "$(objects)" = "1 1" ]
tap_check "... the PIN appears in no state file or log" sh -c \
    "! grep -rqF '$PIN' '$XDG_STATE_HOME' '$XDG_RUNTIME_DIR' '$T/u1.out'"

# a wrong PIN in the file: refused at the login, nothing on the token
printf '%s\n' 'Wrong-Pin-000' >"$T/badpin"
chmod 0600 "$T/badpin"
printf '%s\n%s\n' "$PW" "$(en_otp S0002)" |
    "$P11ENROLL" enroll --invitation "$T/S0002.inv" \
    --token "$TOK?pin-source=file:$T/badpin" --secrets-stdin >"$T/bad.out" 2>&1
rc=$?
tap_check "a wrong PIN in the file: refused" sh -c \
    "[ $rc != 0 ] && grep -q 'the PIN is incorrect' '$T/bad.out'"
tap_check "... nothing added on the token" [ "$(objects)" = "1 1" ]

# no --token: the only initialized token is chosen
printf '%s\n%s\n%s\n' "$PIN" "$PW" "$(en_otp S0002 30)" |
    "$P11ENROLL" enroll --invitation "$T/S0002.inv" --secrets-stdin \
    >"$T/u2.out" 2>&1
rc=$?
cat "$T/u2.out" >&2
tap_check "enroll without --token picks the one initialized token" sh -c \
    "[ $rc = 0 ] && grep -q \"on 'p11e-unatt'\" '$T/u2.out'"
tap_check "... two key pairs and two certificates on it now" \
    [ "$(objects)" = "2 2" ]
tap_check "no PIN in the agent's state or logs" sh -c \
    "! grep -rqF '$PIN' '$XDG_STATE_HOME' '$XDG_RUNTIME_DIR'"
tap_done
