#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# An idle agent (issue 7): p11enrolld tracking 1,100 credentials, none due
# for months (records written by tests/tools/agent-idle.py in the
# journal's format), makes no wake-up in 5 s (no context switch, no
# scheduler run, from /proc), up or at rest in p11enrolld-rest (which a
# call wakes); the scheduler's index holds all 1,100 (more
# than the 1,024 a directory listing once stopped at); a record changed
# while the agent was away is read again at the restart despite the
# index.  Figures: bench/agent-idle.sh.

. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/agent.sh"

command -v python3 >/dev/null 2>&1 || tap_skip_all "python3 not installed"
[ -r /proc/self/schedstat ] || tap_skip_all "no /proc/PID/schedstat"

tap_plan 6

tap_tmpdir T
agent_env "$T"
tool="python3 $top_srcdir/tests/tools/agent-idle.py"
mkdir -p "$XDG_STATE_HOME/p11enroll"
$tool fill "$XDG_STATE_HOME/p11enroll" 1100

$tool run "$P11ENROLLD" 5 >"$T/idle.txt" 2>&1
cat "$T/idle.txt" >&2
get() { sed -n "s/^$1 //p" "$T/idle.txt"; }
tap_check "the agent started and answered with 1,100 credentials" \
    test -n "$(get startup_ms)"
tap_check "no wake-up in 5 s (no context switch, no scheduler run)" \
    test "$(get voluntary_ctxt_switches)/$(get nonvoluntary_ctxt_switches)/$(get schedstat_runs)" = 0/0/0
tap_check "the scheduler's index lists the 1,100" \
    test "$(($(wc -l <"$XDG_STATE_HOME/p11enroll/schedule.idx") - 1))" = 1100

# at rest (p11enrolld-rest): no wake-up either, and it wakes for a call
printf '[agent]\nrest-after = 1s\n' >"$P11ENROLL_CONF"
$tool rest "$P11ENROLLD" 5 >"$T/rest.txt" 2>&1
cat "$T/rest.txt" >&2
rm -f "$P11ENROLL_CONF"
tap_check "at rest: no wake-up in 5 s, and 5 calls answered" sh -c \
    "grep -q '^wake_ms ' '$T/rest.txt' &&
     grep -q '^voluntary_ctxt_switches 0$' '$T/rest.txt' &&
     grep -q '^nonvoluntary_ctxt_switches 0$' '$T/rest.txt' &&
     grep -q '^schedstat_runs 0$' '$T/rest.txt'"


# a record changed behind the index's back is read again: it expires
python3 - "$XDG_STATE_HOME/p11enroll/credentials/c-0000000000000007.json" <<'PY'
import json, os, sys, time
p = sys.argv[1]
r = json.load(open(p))
r["not_before"] = int(time.time()) - 100
r["not_after"] = int(time.time()) - 10
t = p + ".new"
with open(t, "w") as f:
    json.dump(r, f)
os.chmod(t, 0o600)
os.rename(t, p)
PY
REC=$XDG_STATE_HOME/p11enroll/credentials/c-0000000000000007.json
state() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["state"])' "$REC"; }
"$P11ENROLL" status >/dev/null 2>&1
end=$(($(date +%s) + 10))
until [ "$(state)" = EXPIRED ]; do
	[ "$(date +%s)" -lt $end ] || break
	sleep 0.2
done
tap_check "a record changed while the agent was away is read again (EXPIRED)" \
    test "$(state)" = EXPIRED
# 1,100 credentials are more than a call's 64 KiB: a reply may be more
"$P11ENROLL" --no-autostart --json status >"$T/status.json" 2>"$T/status.err"
cat "$T/status.err" >&2
tap_check "status lists all 1,100 (a reply of $(wc -c <"$T/status.json") bytes)" \
    test "$(grep -c '"credential": "c-' "$T/status.json")" = 1100
tap_done
