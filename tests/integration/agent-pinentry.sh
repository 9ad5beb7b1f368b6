#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# A background renewal that needs the token's PIN (issue 7 item 2): five
# credentials of a service without a PIN file ([policy] validity = 600,
# renew-before = 200, backdate = 370: renewal due 30 s after issuance),
# four on one SoftHSM2 token and C2 on a second one.  Each enters
# WAITING_PIN once: the pin-needed event goes to the [notify] hook and to
# the desktop (a notify-send that records its arguments), naming
# `p11enroll renew --credential ID`; and the agent asks through the real
# pinentry-tty ([agent] pinentry = its path) on a pseudo-terminal this
# test holds (tests/tools/ptyanswer.py; [agent] pinentry-tty = its path,
# sent as OPTION ttyname).  The dialogs come one after the other, and
# ptyanswer answers each by the credential it names:
#   C1  Ctrl-D: cancelled; WAITING_PIN says so
#   C2  a wrong PIN: refused once, WAITING_PIN, the old certificate kept;
#       the second token's "PIN count low" is the only trace of it, and
#       the agent's log has exactly one refusal
#   C3  the right PIN (with a '%': pinentry sends it as %25): renewed, a
#       new serial on the token
#   C4  nobody answers: closed after [agent] pinentry-timeout (5 s)
#   C5  nobody answers, but p11enroll renew brings the PIN meanwhile: the
#       dialog is closed
# A restarted agent asks again for none of them and tells nothing again;
# the PINs are in no log or state file; p11enroll renew then finishes C2.
# Once they are enrolled the RA issues 1-hour certificates, so C3's new
# one does not renew again within the test.

. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/softhsm.sh"
. "$top_srcdir/tests/lib/agent.sh"
. "$top_srcdir/tests/lib/ra.sh"
. "$top_srcdir/tests/lib/enroll.sh"
. "$top_srcdir/tests/lib/cred.sh"

cred_require
PINENTRY=$(command -v pinentry-tty) ||
    tap_skip_all "pinentry-tty not installed (Debian package pinentry-tty)"

tap_plan 34

cred_setup p11e-pe 'Pin%Entry-5d0c27' \
    "[policy]" "validity = 600" "renew-before = 200" "backdate = 370"
TOK2=pkcs11:token=p11e-pe2
PIN2='Pin-Entry2-e81b44'
WRONG='Wrong-PIN-39af0d'
softhsm2-util --init-token --free --label p11e-pe2 --pin "$PIN2" \
    --so-pin 12345678 >/dev/null 2>&1 || tap_bail "cannot create a second token"

# has TEXT PATTERN: whether TEXT matches the grep PATTERN
has()
{
	printf '%s\n' "$1" | grep -q -- "$2"
}

# the terminal the dialogs are shown on
mkdir -p "$T/pty"
python3 "$top_srcdir/tests/tools/ptyanswer.py" "$T/pty" 2>"$T/pty.err" &
PTY_PID=$!
tap_at_exit "touch '$T/pty/stop'; kill $PTY_PID 2>/dev/null"
i=0
while [ ! -s "$T/pty/tty" ] && [ $i -lt 100 ]; do
	sleep 0.1
	i=$((i + 1))
done
TTY=$(cat "$T/pty/tty")
tap_check "a pseudo-terminal for the dialogs ($TTY)" test -c "$TTY"

# the desktop (a notify-send that records) and the hook
cred_desktop
unset DISPLAY WAYLAND_DISPLAY
cat >"$T/hook" <<EOS
#!/bin/sh
echo "\$1 \$P11ENROLL_CREDENTIAL" >>'$T/events.log'
env | grep '^P11ENROLL_' | sort >'$T/env.'"\$1.\$P11ENROLL_CREDENTIAL"
EOS
chmod 0755 "$T/hook"
: >"$T/events.log"

cat >"$P11ENROLL_CONF" <<EOF
[agent]
pinentry = $PINENTRY
pinentry-tty = $TTY
pinentry-timeout = 5

[notify]
hook = $T/hook

[service ra]
url = $URL
server-pin = $SPIN
EOF

# config check: the keys known; a bad value of each as file:line
tap_check "config check: the pinentry keys are valid" conf_check 0 \
    "\[agent\] pinentry = $PINENTRY" "\[agent\] pinentry-tty = $TTY"
cp "$P11ENROLL_CONF" "$T/saved.conf"
printf '%s\n' "[agent]" "pinentry = maybe" "pinentry-tty = pts/7" \
    "pinentry-timeout = 2" >"$P11ENROLL_CONF"
tap_check "a bad pinentry, pinentry-tty, pinentry-timeout: file:line each" \
    conf_check 1 "$P11ENROLL_CONF:2: .*pinentry.*auto, no or an absolute path" \
    "$P11ENROLL_CONF:3: .*pinentry-tty.*absolute path" \
    "$P11ENROLL_CONF:4: .*pinentry-timeout" "3 problems"
cp "$T/saved.conf" "$P11ENROLL_CONF"

# five credentials; C2 on the second token (enrolled with its PIN)
en_user S0002 && en_user S0003 && en_user S0004 && en_user S0005 ||
    tap_bail "user add failed"
C1=$(cred_enroll S0001 ra "$TOK")
C2=$(PIN=$PIN2 cred_enroll S0002 ra "$TOK2")
C3=$(cred_enroll S0003 ra "$TOK")
C4=$(cred_enroll S0004 ra "$TOK")
C5=$(cred_enroll S0005 ra "$TOK")
tap_check "five credentials enrolled" sh -c \
    "test -n '$C1' && test -n '$C2' && test -n '$C3' && test -n '$C4' &&
    test -n '$C5'"
[ -n "$C1" ] && [ -n "$C2" ] && [ -n "$C3" ] && [ -n "$C4" ] &&
    [ -n "$C5" ] || tap_bail "enrollment failed"
S1=$(cred_field "$C1" serial)
S2=$(cred_field "$C2" serial)
S3=$(cred_field "$C3" serial)
# token2 KEY: the serial, or the flags set, of the second token
token2()
{
	"$P11ENROLL" --json tokens 2>/dev/null | python3 -c '
import json, sys
t = [t for t in json.load(sys.stdin)["tokens"] if t["label"] == "p11e-pe2"][0]
v = t[sys.argv[1]]
print(" ".join(k for k, x in sorted(v.items()) if x) if isinstance(v, dict) else v)' "$1"
}
SERIAL2=$(token2 serial)

# from now on 1-hour certificates (C3's new one stays)
cred_ra_restart "[policy]" "validity = 3600" "renew-before = 200" \
    "backdate = 370" || tap_bail "p11enroll-ra serve did not restart"

# how each dialog is answered: by the credential it names
printf '%s\t%s\n' "$C1" "^D" "$C2" "$WRONG" "$C3" "$PIN" "$C4" "-" \
    "$C5" "-" >"$T/pty/rules"

# the five renewals come due 30 s after issuance; the dialogs follow.
# While C4's is open (nobody answers it), how long p11enroll list takes;
# while C5's is, p11enroll renew brings its PIN.
open_ms=
rc5=
end=$(($(date +%s) + 150))
while [ "$(date +%s)" -lt $end ]; do
	n=$(cat "$T/pty/answered" 2>/dev/null | wc -l)
	last=$(tail -n 1 "$T/pty/answered" 2>/dev/null)
	m4=$(cred_field "$C4" last_error.message)
	if [ -z "$open_ms" ] && ! has "$m4" "nobody entered" &&
	    [ "$last" = "$C4" ]; then
		t0=$(date +%s%N)
		"$P11ENROLL" --json list >/dev/null 2>&1
		open_ms=$((($(date +%s%N) - t0) / 1000000))
	fi
	if [ -z "$rc5" ] && [ "$last" = "$C5" ]; then
		printf '%s\n' "$PIN" | "$P11ENROLL" --pin-stdin renew \
		    --credential "$C5" >"$T/renew5.out" 2>&1
		rc5=$?
	fi
	[ "$n" -ge 5 ] && [ -n "$rc5" ] && has "$m4" "nobody entered" && break
	sleep 0.5
done
cat "$T/pty/answered" "$T/renew5.out" >&2
tap_check "five dialogs on the terminal, one per credential" sh -c \
    "test \$(sort -u '$T/pty/answered' | wc -l) = 5 &&
    test \$(wc -l <'$T/pty/answered') = 5"
cred_wait "$C3" state INSTALLED 30
sed 's/\r//g' "$T/pty/screen" >"$T/screen.txt"
cat "$T/screen.txt" >&2

tap_check "the dialog names the token, its serial, the certificate, why" sh -c \
    "tr '\\n' ' ' <'$T/screen.txt' | grep -q \"Token 'p11e-pe2' (serial $SERIAL2): its PIN is needed to renew the certificate CN=S0002,[^ ]* (service ra), whose renewal is due\\. A wrong PIN is not tried again; cancel to enter it later with 'p11enroll renew --credential $C2'\\. PIN: \""
tap_check "and asks with the prompt PIN:" grep -q '^PIN: ' "$T/screen.txt"
tap_check "the typed PINs are not echoed" sh -c \
    "! grep -q -e '$PIN' -e '$WRONG' '$T/pty/screen'"

# the notices
tap_check "the hook ran pin-needed once for each" sh -c \
    "test \$(grep -c '^pin-needed ' '$T/events.log') = 5 &&
    for c in $C1 $C2 $C3 $C4 $C5; do test \$(grep -c \"^pin-needed \$c\$\" '$T/events.log') = 1 || exit 1; done"
E=$T/env.pin-needed.$C2
cat "$E" >&2
tap_check "with P11ENROLL_EVENT and P11ENROLL_COMMAND" sh -c \
    "grep -qx 'P11ENROLL_EVENT=pin-needed' '$E' &&
    grep -qx 'P11ENROLL_COMMAND=p11enroll renew --credential $C2' '$E' &&
    grep -q '^P11ENROLL_TOKEN_URI=pkcs11:.*token=p11e-pe2' '$E'"
tap_check "a desktop notification each, naming the command" sh -c \
    "test \$(grep -c '|Certificate renewal needs the token PIN|' '$T/desktop.log') = 5 &&
    grep -q \"|Certificate renewal needs the token PIN|.*PIN of token 'p11e-pe2' (serial $SERIAL2)\. Run: p11enroll renew --credential $C2|\" '$T/desktop.log'"
tap_check "the log says which credential needs which token's PIN" \
    grep -q "$C2: renewal is due and needs the PIN of token 'p11e-pe2' (serial $SERIAL2): run 'p11enroll renew --credential $C2'" "$LOG"

# C3: the right PIN
tap_check "C3: renewed with the PIN typed in the dialog" sh -c \
    "test '$(cred_field "$C3" state)' = INSTALLED &&
    test -n '$(cred_field "$C3" serial)' &&
    test '$(cred_field "$C3" serial)' != '$S3'"
N3=$(cred_field "$C3" serial)
tap_check "its new certificate is on the token" sh -c \
    "'$P11ENROLL' --json token objects '$TOK' 2>/dev/null | grep -qi '\"serial\": *\"$N3\"'"
tap_check "the log says so, with the new serial" \
    grep -q "$C3: renewed: serial $N3" "$LOG"

# C1: cancelled
tap_check "C1: cancelled, it waits for the PIN (WAITING_PIN)" \
    test "$(cred_field "$C1" state)" = WAITING_PIN
tap_check "and says the dialog was cancelled and what to run" \
    has "$(cred_field "$C1" last_error.message)" \
    "the PIN dialog was cancelled; the renewal waits for the PIN of token 'p11e-pe' (serial $SERIAL): run 'p11enroll renew --credential $C1'"
tap_check "its certificate is unchanged" test "$(cred_field "$C1" serial)" = "$S1"

# C2: the wrong PIN, once
tap_check "C2: the wrong PIN leaves it WAITING_PIN" \
    test "$(cred_field "$C2" state)" = WAITING_PIN
tap_check "saying the PIN was refused and is not tried again" \
    has "$(cred_field "$C2" last_error.message)" \
    "incorrect: 'p11e-pe2' refused the PIN; it is not tried again\..* The PIN came from the PIN dialog: run 'p11enroll renew --credential $C2' with the right one"
tap_check "the old certificate is kept" test "$(cred_field "$C2" serial)" = "$S2"
tap_check "one refusal in the agent's log, one failed C_Login" sh -c \
    "test \$(grep -c '$C2: .*refused the PIN' '$LOG') = 1 &&
    test \$(grep -c 'C_Login: CKR_PIN_INCORRECT' '$LOG') = 1"
flags2=$(token2 flags)
tap_diag "second token's flags: $flags2"
tap_check "the token counted a failure, not a final try or a lock" sh -c \
    "printf '%s' '$flags2' | grep -qw pin_count_low &&
    ! printf '%s' '$flags2' | grep -qw -e pin_final_try -e pin_locked"

# C4: nobody there
tap_check "C4: the dialog closed after 5 s, WAITING_PIN" sh -c \
    "test '$(cred_field "$C4" state)' = WAITING_PIN"
tap_check "saying nobody entered the PIN" \
    has "$(cred_field "$C4" last_error.message)" \
    "nobody entered the PIN in the dialog within 5 s; the renewal waits for the PIN of token 'p11e-pe'"
tap_diag "p11enroll list while C4's dialog was open: ${open_ms:-?} ms"
tap_check "the agent answers while a dialog is open (under 3 s of its 5)" \
    test "${open_ms:-9999}" -lt 3000

# C5: the PIN came from p11enroll renew while its dialog was open
tap_check "C5: p11enroll renew during its dialog renews it" sh -c \
    "test '$rc5' = 0 && grep -q '^renewed: $C5' '$T/renew5.out' &&
    test '$(cred_field "$C5" state)' = INSTALLED"
tap_check "and closes its dialog" \
    grep -q "$C5: the PIN came otherwise: the dialog is closed" "$LOG"

# a restart: nothing asked or told again
agent_stop
"$P11ENROLL" status >/dev/null 2>&1
sleep 3
"$P11ENROLL" list >/dev/null 2>&1
tap_check "a restarted agent opens no dialog again" \
    test "$(wc -l <"$T/pty/answered")" = 5
tap_check "and tells nothing again" \
    test "$(grep -c '^pin-needed ' "$T/events.log")" = 5
tap_check "the wrong PIN was still used once only" \
    test "$(grep -c 'C_Login: CKR_PIN_INCORRECT' "$LOG")" = 1

tap_check "no PIN in the agent's log, state or the hook's environment" sh -c \
    "! grep -rq -e '$PIN' -e '$WRONG' -e '$PIN2' '$LOG' '$XDG_STATE_HOME' '$XDG_RUNTIME_DIR' '$T'/env.* '$T/desktop.log' '$T/events.log'"

# p11enroll renew brings C2's PIN
printf '%s\n' "$PIN2" | "$P11ENROLL" --pin-stdin renew --credential "$C2" \
    >"$T/renew2.out" 2>&1
rc=$?
cat "$T/renew2.out" >&2
tap_check "p11enroll renew with the right PIN finishes C2" sh -c \
    "test $rc = 0 && grep -q '^renewed: $C2' '$T/renew2.out' &&
    test '$(cred_field "$C2" state)' = INSTALLED"
tap_check "still no dialog: it was not needed" \
    test "$(wc -l <"$T/pty/answered")" = 5
tap_done
