#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# The modules EnrollKey initialized stay so (no session, no login) only
# for the Enroll of the same credential (agent/methods.h
# P11E_MODULES_KEEP): an enrollment's Enroll takes them; when the
# command stops after the key (no password on stdin), the next call
# releases them first, so a token made meanwhile is listed (a fresh
# C_Initialize is what shows SoftHSM2 a new token), and --resume
# finishes on fresh modules; with no call at all they are released after
# P11E_MODULES_KEEP (30) seconds by the agent itself, or sooner when it
# rests ([agent] rest-after): finalized, nothing of theirs carried into
# p11enrolld-rest.

. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/softhsm.sh"
. "$top_srcdir/tests/lib/agent.sh"
. "$top_srcdir/tests/lib/ra.sh"
. "$top_srcdir/tests/lib/enroll.sh"

for c in softhsm2-util oathtool python3 sqlite3 openssl curl; do
	command -v $c >/dev/null 2>&1 || tap_skip_all "$c not installed"
done
"$RA" --help 2>/dev/null | grep -q '^  serve' ||
    tap_skip_all "p11enroll-ra serve not built"

tap_plan 11

tap_tmpdir T
agent_env "$T"
PIN='Pin-Kept-3c9e1a'
softhsm_setup p11e-kept "$PIN" >&2 || tap_bail "cannot create a SoftHSM2 token"
unset SOFTHSM_PIN SOFTHSM_SO_PIN
en_ra_start || { cat "$T/ra.log" >&2; tap_bail "p11enroll-ra serve did not start"; }
en_user K0001 && en_user K0002 && en_user K0003 && en_user K0004 ||
    tap_bail "user add failed"
TOK=pkcs11:token=p11e-kept
LOG=$XDG_RUNTIME_DIR/p11enroll/agent.log
# the agent logs what it does with the modules
P11ENROLL_DEBUG=pkcs11 "$P11ENROLL" status >/dev/null 2>&1

# state USER: the state of USER's credential; cred USER: its name
field()
{
	"$P11ENROLL" --json list 2>/dev/null | python3 -c '
import json, sys
c = [x for x in json.load(sys.stdin)["credentials"] if x["user_id"] == sys.argv[1]]
print(c[0][sys.argv[2]] if c else "")' "$1" "$2"
}
# key_only USER: enroll with the PIN only: the key, then no password;
# prints the credential's name from the command's output (a call to the
# agent would release the modules)
key_only()
{
	printf '%s\n' "$PIN" | "$P11ENROLL" enroll --invitation "$T/$1.inv" \
	    --token "$TOK" --secrets-stdin >"$T/out" 2>&1 && return 1
	sed -n 's/^credential \(c-[0-9a-f]*\): .*/\1/p' "$T/out"
}

en_enroll K0001 "$TOK" >"$T/out" 2>&1
rc=$?
cat "$T/out" >&2
c1=$(field K0001 credential)
tap_check "an enrollment succeeds" test $rc = 0 -a -n "$c1"
tap_check "its Enroll took the modules its EnrollKey kept" \
    grep -q "modules kept for $c1 taken" "$LOG"

c2=$(key_only K0002)
tap_check "without a password the command stops after the key" \
    test -n "$c2"
softhsm2-util --init-token --free --label p11e-late --pin "$PIN" \
    --so-pin 12345678 >/dev/null 2>&1 || tap_bail "cannot create a token"
tap_check "the next call lists a token made meanwhile" sh -c \
    "'$P11ENROLL' tokens 2>/dev/null | grep -q p11e-late"
tap_check "the modules kept for $c2 were released before it" \
    grep -q "modules kept for $c2 released" "$LOG"
state=$(field K0002 state)
printf '%s\n%s\n%s\n' "$PIN" "$PW" "$(en_otp K0002)" |
    "$P11ENROLL" enroll --resume "$c2" --secrets-stdin >"$T/out" 2>&1
rc=$?
cat "$T/out" >&2
tap_check "the key waited (KEY_READY) and enroll --resume finishes it" sh -c \
    "test $state = KEY_READY && test $rc = 0 && test '$(field K0002 state)' = INSTALLED"

c3=$(key_only K0003)
tap_check "another key without a password" test -n "$c3"
# no call now: the agent alone releases them (poll the log, up to 60 s)
i=0
until grep -q "modules kept for $c3 released" "$LOG" || [ $i -ge 600 ]; do
	sleep 0.1
	i=$((i + 1))
done
tap_check "with no call they are released after their time (${i}00 ms)" \
    grep -q "modules kept for $c3 released" "$LOG"
tap_check "not before it (25 s at least)" test $i -ge 250

# a rest comes before their time: they are finalized first, and the
# resting agent holds none of their descriptors
agent_stop
printf '[agent]\nrest-after = 1s\n' >"$P11ENROLL_CONF"
P11ENROLL_DEBUG=pkcs11 "$P11ENROLL" status >/dev/null 2>&1
apid=$(agent_pid)
c4=$(key_only K0004)
i=0
until [ "$(cat "/proc/$apid/comm" 2>/dev/null)" = p11enrolld-rest ] ||
    [ $i -ge 200 ]; do
	sleep 0.1
	i=$((i + 1))
done
tap_check "the agent rests ${i}00 ms after the key, releasing the modules first" sh -c \
    "test -n '$c4' && test '$(cat "/proc/$apid/comm" 2>/dev/null)' = p11enrolld-rest &&
     grep -q 'modules kept for $c4 released' '$LOG'"
# 0, 1, 2, the socket, the lock and the rest's own signalfd and timerfd
tap_check "... holding no descriptor of theirs" \
    test "$(ls "/proc/$apid/fd" | wc -l)" = 7
