#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# The server's clock (issue 7): p11enrolld runs under faketime with its
# clock an hour behind the RA's.  The RA's Date header tells it: the
# agent logs by how much the local clock is off, enrolls (the new
# certificate's notBefore is in its local future) and renews by
# the server's time ([policy] validity = 270 s, renew-before = 95 s,
# backdate = 170 s: the window opens 5 s after issuance, two thirds of the
# lifetime are past 10 s after it — 5 s clear of the second-rounded skew —
# and expiry 100 s after it, room for a loaded machine), not an hour later
# as its own clock would say — also when the agent rested in between
# (rest-after = 1 s: the skew goes through the rest with it).  A second
# agent with clock-skew-limit = 2h
# takes its clock as right: no warning, and the renewal not yet due.

. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/softhsm.sh"
. "$top_srcdir/tests/lib/agent.sh"
. "$top_srcdir/tests/lib/ra.sh"
. "$top_srcdir/tests/lib/enroll.sh"
. "$top_srcdir/tests/lib/cred.sh"

cred_require faketime
faketime -f -1h date >/dev/null 2>&1 || tap_skip_all "faketime does not work here"

tap_plan 9

cred_setup p11e-clock 'Pin-Clock-7d21a9' \
    "[policy]" "validity = 270" "renew-before = 95" "backdate = 170"
# the agent the CLI starts: an hour behind
cred_faketime_agent -1h

cat >"$P11ENROLL_CONF" <<EOF2
[service ra]
url = $URL
server-pin = $SPIN
token = $TOK?pin-source=file:$T/pin
grace-period = 5
[agent]
rest-after = 1s
EOF2

C1=$(cred_enroll S0001 ra "$TOK")
tap_check "enrolled through an agent whose clock is an hour behind" \
    test -n "$C1"
[ -n "$C1" ] || tap_bail "enrollment failed"
tap_check "it logged by how much its clock is off" \
    grep -Eq 'warning: the local clock is off by -(3599|3600|3601) s \(behind the server' "$LOG"
SER1=$(cred_field "$C1" serial)
NA1=$(cred_field "$C1" not_after)
tap_check "the next action is the server's window, not an hour later" \
    test "$(cred_field "$C1" next_action)" -le "$((NA1 - 90 + 1))"

# the RA's 1-hour certificates from now on: a renewed one stays
cred_ra_restart "[policy]" "validity = 3600" "renew-before = 95" \
    "backdate = 50" || tap_bail "serve did not restart"

# the record, not the agent, is watched: the agent rests meanwhile, and
# the skew it carries through the rest sets the deadline that wakes it
REC=$XDG_STATE_HOME/p11enroll/credentials/$C1.json
rec_serial() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["serial"])' "$REC" 2>/dev/null; }
apid=$(agent_pid)
rested=0
end=$(($(date +%s) + 60))
while [ "$(rec_serial)" = "$SER1" ] && [ "$(date +%s)" -lt $end ]; do
	[ "$(cat "/proc/$apid/comm" 2>/dev/null)" != p11enrolld-rest ] ||
	    rested=1
	sleep 0.2
done
tap_check "the agent rested before the renewal (p11enrolld-rest)" \
    test $rested = 1
SER2=$(cred_field "$C1" serial)
tap_check "renewed by itself within a minute (not an hour later)" \
    test -n "$SER2" -a "$SER2" != "$SER1"
tap_check "and not before the server's window opened (no too-early)" \
    sh -c "! grep -qi 'too early' '$LOG'"
tap_check "INSTALLED" test "$(cred_field "$C1" state)" = INSTALLED
tap_check "the warning was logged once, not per request" \
    test "$(grep -c 'the local clock is off by' "$LOG")" = 1

# the same hour, but within clock-skew-limit: no correction, no warning
agent_stop
: >"$LOG"
printf '%s\n' "[agent]" "clock-skew-limit = 2h" >>"$P11ENROLL_CONF"
printf '%s\n' "$PIN" | "$P11ENROLL" --pin-stdin renew --credential "$C1" \
    >"$T/limit.out" 2>&1
cat "$T/limit.out" "$LOG" >&2
tap_check "clock-skew-limit = 2h: the server asked, no warning" sh -c \
    "grep -q 'too early' '$T/limit.out' && ! grep -q 'clock is off' '$LOG'"
tap_done
