#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Renewal end to end (issue 7): p11enrolld renews by itself against
# p11enroll-ra serve with short lifetimes ([policy] validity = 90 s,
# renew-before = 30 s, backdate = 50 s: the window opens and two thirds
# of the lifetime are past 10 s after issuance; expiry 40 s after it).
#  - S0001 (service "ra", whose token URI names a pin-source file): the
#    agent renews at the window's opening by itself: a new key and
#    certificate on the token, the RA's old certificate superseded, the
#    old pair removed after the grace period (5 s);
#  - S0002: its certificate is revoked at the RA before the window opens:
#    the renewal is refused, the old certificate kept, the error recorded,
#    the unused new key removed, exit status 6 from p11enroll renew;
#  - S0003 (service "ra2", no PIN file): p11enroll renew before the window
#    says from when; renew --now gets the server's too-early and the agent
#    reschedules at the date the server gave; then it waits in
#    WAITING_PIN until p11enroll renew brings the PIN;
#  - S0004 (service "ra2"): nobody brings the PIN: at notAfter it is
#    EXPIRED with the message to ask for a reissue (p11enroll exits 6).
# Once the three are enrolled the RA issues 1-hour certificates, so a
# renewed certificate does not renew again within the test.

. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/softhsm.sh"
. "$top_srcdir/tests/lib/agent.sh"
. "$top_srcdir/tests/lib/ra.sh"
. "$top_srcdir/tests/lib/enroll.sh"
. "$top_srcdir/tests/lib/cred.sh"

for c in softhsm2-util oathtool python3 sqlite3 openssl curl; do
	command -v $c >/dev/null 2>&1 || tap_skip_all "$c not installed"
done
"$RA" --help 2>/dev/null | grep -q '^  serve' ||
    tap_skip_all "p11enroll-ra serve not built"

tap_plan 34

tap_tmpdir T
agent_env "$T"
PIN='Pin-Renew-3b9e17'
softhsm_setup p11e-renew "$PIN" >&2 || tap_bail "cannot create a SoftHSM2 token"
TOK=pkcs11:token=p11e-renew
en_ra_start しんきん商事 "rate-limit = 60000" "rate-burst = 1000" \
    "[policy]" "validity = 90" "renew-before = 30" "backdate = 50" ||
    { cat "$T/ra.log" >&2; tap_bail "p11enroll-ra serve did not start"; }

# ra_policy VALIDITY: serve again on the same port with that validity
ra_policy()
{
	cred_ra_restart "[policy]" "validity = $1" "renew-before = 30" \
	    "backdate = 50"
}

# renew_user USER SERVICE: enroll USER on the service, prints the credential
enroll_user()
{
	en_user "$1" || return 1
	cred_enroll "$1" "$2" "$TOK"
}

field()
{
	cred_field "$@"
}

wait_field()
{
	cred_wait "$@"
}

# the services: "ra" renews unattended (the PIN file), "ra2" cannot
en_user S0000 || tap_bail "user add failed"
SPIN=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["server_pin"])' "$T/S0000.inv")
printf '%s\n' "$PIN" >"$T/pin"
chmod 0600 "$T/pin"
# the [notify] hook: one line per event
cat >"$T/hook" <<EOF
#!/bin/sh
echo "\$1 \$P11ENROLL_CREDENTIAL \$P11ENROLL_DAYS_LEFT" >>'$T/events.log'
EOF
chmod 0755 "$T/hook"
: >"$T/events.log"
cat >"$P11ENROLL_CONF" <<EOF
[notify]
hook = $T/hook

[service ra]
url = $URL
server-pin = $SPIN
token = $TOK?pin-source=file:$T/pin
grace-period = 5

[service ra2]
url = $URL
server-pin = $SPIN
EOF

t0=$(date +%s)
C1=$(enroll_user S0001 ra)
tap_check "S0001 enrolled (service with a PIN file)" test -n "$C1"
C2=$(enroll_user S0002 ra)
tap_check "S0002 enrolled" test -n "$C2"
C3=$(enroll_user S0003 ra2)
tap_check "S0003 enrolled (service without a PIN file)" test -n "$C3"
C4=$(enroll_user S0004 ra2)
tap_check "S0004 enrolled (service without a PIN file)" test -n "$C4"
[ -n "$C1" ] && [ -n "$C2" ] && [ -n "$C3" ] && [ -n "$C4" ] ||
    tap_bail "enrollment failed"
ID1=$(field "$C1" id)
SER1=$(field "$C1" serial)
NA1=$(field "$C1" not_after)
"$P11ENROLL" list >"$T/list.txt" 2>&1
cat "$T/list.txt" >&2
tap_check "list shows the next action time" \
    grep -q 'next action .* UTC (renewal)' "$T/list.txt"

# S0002's certificate is revoked before its window opens
"$RA" cert revoke "$(field "$C2" serial)" >/dev/null 2>&1 || tap_diag "revoke failed"
# from now on the RA issues 1-hour certificates
ra_policy 3600 || tap_bail "serve did not restart"

# --- too early, by hand ---
printf '%s\n' "$PIN" | "$P11ENROLL" --pin-stdin renew --credential "$C3" \
    >"$T/early.out" 2>&1
rc=$?
cat "$T/early.out" >&2
tap_check "renew before the window fails" test $rc = 1
tap_check "and says from when" grep -q 'too early.*re-enrollment opens at 20' "$T/early.out"
tap_check "nothing was generated for it" test "$(field "$C3" state)" = INSTALLED
printf '%s\n' "$PIN" | "$P11ENROLL" --pin-stdin renew --now \
    --credential "$C3" >"$T/early2.out" 2>&1
rc=$?
cat "$T/early2.out" >&2
tap_check "renew --now: the server's too-early, with its date" sh -c \
    "test $rc = 1 && grep -q 'server: re-enrollment opens at 20' '$T/early2.out'"
NA3=$(field "$C3" not_after)
tap_check "rescheduled at the server's date" \
    test "$(field "$C3" next_action)" = $((NA3 - 30 + 1))
tap_check "the CSR waits in RENEW_SUBMITTED" test "$(field "$C3" state)" = RENEW_SUBMITTED

# --- S0001 renews by itself ---
end=$((t0 + 60))
while [ "$(field "$C1" serial)" = "$SER1" ] && [ "$(date +%s)" -lt $end ]; do
	sleep 0.5
done
SER1b=$(field "$C1" serial)
tap_check "S0001 renewed by itself within the bounded wait" \
    test -n "$SER1b" -a "$SER1b" != "$SER1"
tap_diag "renewed $(($(date +%s) - t0)) s after the first enrollment"
tap_check "it is INSTALLED with a new key id" sh -c \
    "test '$(field "$C1" state)' = INSTALLED && test '$(field "$C1" id)' != '$ID1'"
tap_check "the new certificate is valid an hour" \
    test "$(field "$C1" not_after)" -gt $((NA1 + 3000))
tap_check "the RA: the old certificate superseded, the new one valid" \
    test "$(sqlite3 "$D/ra.db" "SELECT status FROM certificates WHERE upper(serial) = '$SER1'")/$(sqlite3 "$D/ra.db" "SELECT status FROM certificates WHERE upper(serial) = '$SER1b'")" = superseded/valid
tap_check "the old pair stays during the grace period" \
    test "$(field "$C1" old_id)" = "$ID1"
en_count "$TOK" private-key >"$T/n1"
# then it goes: S0001's old pair and S0002's unused new key
wait_field "$C1" old_id "" 20
tap_check "the old pair is removed after the grace period" \
    test -z "$(field "$C1" old_id)"

# --- S0002: refused ---
wait_field "$C2" state REVOKED 30
tap_check "the revoked certificate's renewal is refused (REVOKED)" \
    test "$(field "$C2" state)" = REVOKED
tap_check "the error is recorded" sh -c \
    "'$P11ENROLL' list | grep -A4 '$C2' | grep -q 'last error: the certificate is revoked'"
tap_check "the old certificate is kept" \
    test "$(field "$C2" id)" != "" -a "$(field "$C2" serial)" != ""
printf '%s\n' "$PIN" | "$P11ENROLL" --pin-stdin renew --credential "$C2" \
    >"$T/rev.out" 2>&1
tap_check "p11enroll renew exits 6 (needs a reissue)" test $? = 6

# --- S0003: the server's date comes, no PIN file ---
wait_field "$C3" state WAITING_PIN 40
tap_check "S0003 waits for a PIN (WAITING_PIN)" \
    test "$(field "$C3" state)" = WAITING_PIN
printf '%s\n' "$PIN" | "$P11ENROLL" --pin-stdin renew --credential "$C3" \
    >"$T/pin.out" 2>&1
rc=$?
cat "$T/pin.out" >&2
tap_check "p11enroll renew with the PIN finishes it" sh -c \
    "test $rc = 0 && grep -q '^renewed: $C3' '$T/pin.out'"
tap_check "S0003 is INSTALLED" test "$(field "$C3" state)" = INSTALLED

# --- S0004: nobody renewed it ---
wait_field "$C4" state EXPIRED 60
tap_check "S0004 is EXPIRED at notAfter" test "$(field "$C4" state)" = EXPIRED
tap_check "with the message to ask for a reissue" test \
    "$(field "$C4" last_error.message)" = "the certificate has expired: ask your administrator to reissue"
printf '%s\n' "$PIN" | "$P11ENROLL" --pin-stdin renew --credential "$C4" \
    >"$T/exp.out" 2>&1
rc=$?
cat "$T/exp.out" >&2
tap_check "p11enroll renew exits 6 and says so" sh -c \
    "test $rc = 6 && grep -q 'ask your administrator to reissue' '$T/exp.out'"

cat "$T/events.log" >&2
tap_check "the hook: S0001 renewed, S0003 renewed, once each" sh -c \
    "test \$(grep -c '^renewed $C1 ' '$T/events.log') = 1 &&
    test \$(grep -c '^renewed $C3 ' '$T/events.log') = 1"
tap_check "the hook: S0002's renewal-failed, S0004 expired (0 days left)" \
    sh -c "grep -qx 'renewal-failed $C2 1' '$T/events.log' &&
    grep -qx 'expired $C4 0' '$T/events.log'"
tap_check "no expiry notice for certificates shorter than a day" sh -c \
    "! grep -q '^expiry-notice' '$T/events.log'"

# the token: each credential one key pair and one certificate
# (S0003's old pair is still in its grace period: 1 day, the default)
tap_check "private keys: S0001 1, S0002 1, S0003 2, S0004 1" \
    test "$(en_count "$TOK" private-key)" = 5
tap_check "leaf certificates likewise" \
    test "$(en_count "$TOK" certificate)" = 5
tap_check "the RA issued 6 certificates, 2 superseded" \
    test "$(sqlite3 "$D/ra.db" "SELECT count(*) || '/' || sum(status = 'superseded') FROM certificates")" = 6/2
tap_check "the PIN is in no journal or log" sh -c \
    "! grep -rq '$PIN' '$XDG_STATE_HOME' '$XDG_RUNTIME_DIR/p11enroll/agent.log' '$T/ra.log'"
tap_done
