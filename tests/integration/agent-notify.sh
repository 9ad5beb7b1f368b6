#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Expiry notices (issue 7): a 40-day certificate ([policy] validity =
# 40d, renew-before = 20d) of a service without a PIN file; p11enrolld is
# restarted under faketime 30, 14, 7 and 1 days (and 30 s) before its
# notAfter, then after it.  Each time the notice of that day is told once:
# in the agent's log, as a desktop notification (a notify-send on PATH
# that records its arguments, a session bus address set) and through the
# [notify] hook, whose environment is recorded; a restart at the same
# time tells nothing again (the journal remembers).  After notAfter: the
# "expired" event once, the credential EXPIRED.  The agent's clock
# correction is off (clock-skew-limit = 3650d): the fake clock is the
# point.

. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/softhsm.sh"
. "$top_srcdir/tests/lib/agent.sh"
. "$top_srcdir/tests/lib/ra.sh"
. "$top_srcdir/tests/lib/enroll.sh"
. "$top_srcdir/tests/lib/cred.sh"

cred_require faketime
faketime -f +1 date >/dev/null 2>&1 || tap_skip_all "faketime does not work here"

tap_plan 24

cred_setup p11e-notify 'Pin-Notify-c3e8f1' \
    "[policy]" "validity = 40d" "renew-before = 20d" "backdate = 0"
# the agent the CLI starts, at the offset (seconds) in $T/offset
echo 0 >"$T/offset"
cred_faketime_agent "+\$(cat '$T/offset')"

# the desktop: a notify-send that records its arguments
cred_desktop
# [agent] pinentry = auto with no display and no pinentry-tty: the
# pinentry on PATH (one that records being run) is never started
unset DISPLAY WAYLAND_DISPLAY
printf '#!/bin/sh\ntouch %s\n' "$T/pinentry.ran" >"$T/bin/pinentry"
chmod 0755 "$T/bin/pinentry"

# the hook: one line per event (pin-needed, when the renewal comes due
# without a PIN, apart), its environment kept
cat >"$T/hook" <<EOS
#!/bin/sh
[ "\$1" = pin-needed ] && { echo "\$P11ENROLL_CREDENTIAL" >>'$T/pin.log'; exit 0; }
echo "\$1 \$P11ENROLL_DAYS_LEFT" >>'$T/events.log'
env | grep '^P11ENROLL_' | sort >'$T/env.'"\$1.\$P11ENROLL_DAYS_LEFT"
EOS
chmod 0755 "$T/hook"
: >"$T/events.log"

cat >"$P11ENROLL_CONF" <<EOF2
[agent]
clock-skew-limit = 3650d

[notify]
hook = $T/hook

[service ra]
url = $URL
server-pin = $SPIN
EOF2

# config check knows the new keys, and says file:line for a bad value
tap_check "config check: the new keys are valid" conf_check 0 \
    "\[notify\] hook = $T/hook" "\[agent\] clock-skew-limit = 3650d"
cp "$P11ENROLL_CONF" "$T/saved.conf"
printf '%s\n' "[notify]" "desktop = perhaps" "[agent]" \
    "clock-skew-limit = 0" >>"$P11ENROLL_CONF"
cp "$P11ENROLL_CONF" "$T/bad.conf"
tap_check "a bad value of each: file:line, the key, 2 problems" conf_check 1 \
    "$P11ENROLL_CONF:11: .*desktop" "$P11ENROLL_CONF:13: .*clock-skew-limit" \
    "2 problems"
tap_check "and nothing changed: the file as it was, no agent started" sh -c \
    "cmp -s '$P11ENROLL_CONF' '$T/bad.conf' &&
    test ! -e '$XDG_RUNTIME_DIR/p11enroll/agent.sock'"
cp "$T/saved.conf" "$P11ENROLL_CONF"

C1=$(cred_enroll S0001 ra "$TOK")
tap_check "enrolled a 40-day certificate" test -n "$C1"
[ -n "$C1" ] || tap_bail "enrollment failed"
NA=$(cred_field "$C1" not_after)

# at DAYS before notAfter (+30 s): agent_at DAYS
agent_at()
{
	agent_stop
	echo $((NA - $1 * 86400 + 30 - $(date +%s))) >"$T/offset"
	"$P11ENROLL" status >/dev/null 2>&1
}

# wait_events N: until the hook recorded N events (10 s)
wait_events()
{
	we_end=$(($(date +%s) + 10))
	while [ "$(wc -l <"$T/events.log")" -lt "$1" ]; do
		[ "$(date +%s)" -lt $we_end ] || return 1
		sleep 0.2
	done
}

sleep 1
tap_check "no event at issuance (40 days left)" test ! -s "$T/events.log"

n=0
for d in 30 14 7 1; do
	agent_at $d
	n=$((n + 1))
	wait_events $n
	tap_check "$d days before: the hook ran once with DAYS_LEFT $d" \
	    test "$(tail -n 1 "$T/events.log")/$(wc -l <"$T/events.log")" = "expiry-notice $d/$n"
done
tap_check "each notice is in the agent's log" \
    test "$(grep -c "credential $C1 .* expires in" "$LOG")" = 4
tap_check "no display: no PIN dialog (auto)" test ! -e "$T/pinentry.ran"
tap_check "the 1-day notice says the renewal needs the PIN" \
    grep -q "expires in 1 day, at .*: the renewal needs the PIN: run 'p11enroll renew'" "$LOG"
tap_check "the credential waits for the PIN meanwhile" \
    test "$(cred_field "$C1" state)" = WAITING_PIN

# the same time again: nothing is told twice
agent_at 1
sleep 3
tap_check "a restart tells nothing again" test "$(wc -l <"$T/events.log")" = 4
tap_check "4 desktop notifications, one each" \
    test "$(grep -vc 'needs the token PIN' "$T/desktop.log")" = 4
tap_check "and the renewal's need of the PIN was told once" sh -c \
    "test \"\$(cat '$T/pin.log')\" = '$C1' &&
    test \$(grep -c '|Certificate renewal needs the token PIN|.*Run: p11enroll renew --credential $C1|' '$T/desktop.log') = 1"
tap_check "the desktop notification names the command" \
    grep -q "Certificate expires in 7 days|.*p11enroll renew --credential $C1|" "$T/desktop.log"

# after notAfter
agent_at -1
wait_events 5
tap_check "after notAfter: the expired event" \
    test "$(tail -n 1 "$T/events.log")" = "expired 0"
tap_check "the credential is EXPIRED" test "$(cred_field "$C1" state)" = EXPIRED
i=0
while [ "$(grep -vc 'needs the token PIN' "$T/desktop.log")" -lt 5 ] &&
    [ $i -lt 50 ]; do
	sleep 0.2
	i=$((i + 1))
done
tap_check "the desktop says to ask for a reissue" sh -c \
    "grep -v 'needs the token PIN' '$T/desktop.log' | tail -n 1 | grep -q '^--app-name=p11enroll|--urgency=critical|--|Certificate expired|.*ask your administrator to reissue|\$'"
agent_at -1
sleep 3
tap_check "a restart does not repeat it" test "$(wc -l <"$T/events.log")" = 5

E=$T/env.expiry-notice.30
cat "$E" >&2
tap_check "the hook's environment: the event and the credential" sh -c \
    "grep -qx 'P11ENROLL_EVENT=expiry-notice' '$E' && grep -qx 'P11ENROLL_CREDENTIAL=$C1' '$E'"
tap_check "notAfter, subject, token URI" sh -c \
    "grep -q '^P11ENROLL_NOT_AFTER=20[0-9-]*T[0-9:]*Z\$' '$E' && grep -q '^P11ENROLL_SUBJECT=.*S0001' '$E' && grep -q '^P11ENROLL_TOKEN_URI=pkcs11:.*token=p11e-notify' '$E'"
tap_check "no PIN in the hook's environment or the log" sh -c \
    "! grep -rq '$PIN' '$T'/env.* '$LOG'"
tap_done
