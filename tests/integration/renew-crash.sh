#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# kill -9 during a renewal (security.md b3, F1-F10 for re-enrollment): the
# agent dies at a crash point of agent/renew.c while it renews by itself;
# started again, it resumes from the journal: exactly one new key pair and
# certificate on the token, exactly one renewal at the RA (the lost answer
# of renew-after-submit comes back by re-delivery of the same CSR), and the
# old pair removed after the grace period.  (After the two last points
# the certificate the agent resumes with is the 90-s one, which renews
# once more.)  The RA's window is open at
# issuance (validity 90 s, renew-before 90 s, backdate 60 s) so the agent
# renews at once; before the restart the RA switches to 1-hour
# certificates, which do not renew again.

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

POINTS="renew-after-id-journaled renew-after-keygen renew-after-submit
renew-after-token-write"
tap_plan $((5 * $(echo $POINTS | wc -w)))

tap_tmpdir T
agent_env "$T"
PIN='Pin-RenewCrash-52c0d4'
softhsm_setup p11e-rcrash "$PIN" >&2 || tap_bail "cannot create a SoftHSM2 token"
TOK=pkcs11:token=p11e-rcrash

# ra_policy VALIDITY: (re)start serve on $PORT with that validity
ra_policy()
{
	cred_ra_restart "[policy]" "validity = $1" "renew-before = 90" \
	    "backdate = 60"
}

field()
{
	cred_field "$@"
}

en_ra_start || { cat "$T/ra.log" >&2; tap_bail "p11enroll-ra serve did not start"; }
ra_policy 90 || tap_bail "serve did not restart"
en_user S0000 || tap_bail "user add failed"
SPIN=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["server_pin"])' "$T/S0000.inv")
printf '%s\n' "$PIN" >"$T/pin"
chmod 0600 "$T/pin"
cat >"$P11ENROLL_CONF" <<EOF
[service ra]
url = $URL
server-pin = $SPIN
token = $TOK?pin-source=file:$T/pin
grace-period = 1
EOF

n=0
for pt in $POINTS; do
	n=$((n + 1))
	U=S000$n
	ra_policy 90 || tap_bail "serve did not restart"
	agent_stop
	# the agent of this round dies at $pt
	P11ENROLL_CRASHPOINT=$pt "$P11ENROLL" status >/dev/null 2>&1
	pid=$(agent_pid)
	en_user $U || tap_bail "user add failed"
	printf '%s\n%s\n%s\n' "$PIN" "$PW" "$(en_otp $U)" |
	    "$P11ENROLL" --no-autostart enroll --service ra --token "$TOK" \
	    --contract-id "$C" --user-id $U --secrets-stdin >"$T/$U.out" 2>&1
	cat "$T/$U.out" >&2
	cred=$(sed -n 's/^enrolled: //p' "$T/$U.out")
	ser=$(sqlite3 "$D/ra.db" "SELECT upper(c.serial) FROM certificates c JOIN users u ON c.user = u.id WHERE u.user_id = '$U'")
	i=0
	while kill -0 "$pid" 2>/dev/null && [ $i -lt 300 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	tap_check "$pt: the agent died there during the renewal" sh -c \
	    "test -n '$cred' && ! kill -0 $pid 2>/dev/null"
	ra_policy 3600 || tap_bail "serve did not restart"
	"$P11ENROLL" status >/dev/null 2>&1
	i=0
	# a re-delivered 90-s certificate renews once more (with the 1-hour
	# policy): wait for the one that stays
	while { [ "$(field "$cred" state)" != INSTALLED ] ||
	    [ "$(field "$cred" serial)" = "$ser" ] ||
	    [ -n "$(field "$cred" old_id)" ] ||
	    [ "$(field "$cred" not_after)" -lt $(($(date +%s) + 1000)) ]; } &&
	    [ $i -lt 60 ]; do
		sleep 0.5
		i=$((i + 1))
	done
	tap_check "$pt: restarted, it finishes the renewal" sh -c \
	    "test '$(field "$cred" state)' = INSTALLED && test '$(field "$cred" serial)' != '$ser'"
	tap_check "$pt: the RA certified no request twice; one valid" test \
	    "$(sqlite3 "$D/ra.db" "SELECT (count(*) - count(DISTINCT c.csr_sha256)) || '/' || sum(c.status = 'valid') FROM certificates c JOIN users u ON c.user = u.id WHERE u.user_id = '$U'")" = 0/1
	tap_check "$pt: one key pair per credential on the token" sh -c \
	    "test $(en_count "$TOK" private-key) = $n && test $(en_count "$TOK" public-key) = $n"
	tap_check "$pt: and one certificate" \
	    test "$(en_count "$TOK" certificate)" = $n
done
tap_done
