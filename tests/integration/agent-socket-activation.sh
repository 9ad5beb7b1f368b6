#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# The agent under socket activation (systemd/p11enrolld.socket): with
# systemd-socket-activate holding $XDG_RUNTIME_DIR/p11enroll/agent.sock,
# the first connection starts p11enrolld with LISTEN_FDS=1 / LISTEN_PID;
# it serves on fd 3 (p11enroll status through it), rests on it and
# leaves systemd's socket in place when it stops at rest, and ignores LISTEN_* meant for another
# process.  The units pass systemd-analyze verify where it can run.

. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/agent.sh"

command -v systemd-socket-activate >/dev/null 2>&1 ||
    tap_skip_all "systemd-socket-activate not installed (Debian package systemd)"

tap_plan 9

tap_tmpdir T
agent_env "$T"
mkdir -p -m 0700 "$XDG_RUNTIME_DIR/p11enroll"
SOCK=$XDG_RUNTIME_DIR/p11enroll/agent.sock
# it rests soon: stopped at rest, systemd's socket stays too
printf '[agent]\nrest-after = 1s\n' >"$P11ENROLL_CONF"
# it passes no environment but what -E names (a user manager sets these)
systemd-socket-activate -E XDG_RUNTIME_DIR -E XDG_STATE_HOME -E HOME \
    -E P11ENROLL_CONF -E P11ENROLL_REST -l "$SOCK" "$P11ENROLLD" \
    2>"$T/sa.log" &
sa=$!
tap_at_exit "kill $sa 2>/dev/null"
i=0
while [ ! -S "$SOCK" ] && [ $i -lt 100 ]; do
	sleep 0.05
	i=$((i + 1))
done
tap_check "systemd-socket-activate listens on the agent's socket" test -S "$SOCK"
tap_check "no agent runs before the first connection" sh -c \
    "! pgrep -f -x '$P11ENROLLD' >/dev/null"
"$P11ENROLL" --no-autostart --json status >"$T/status.json" 2>"$T/status.err"
rc=$?
cat "$T/status.err" >&2
tap_check "p11enroll status through the activated agent" test $rc = 0
pid=$(sed -n 's/^ *"pid": \([0-9]*\),*$/\1/p' "$T/status.json" | head -n 1)
tap_check "the agent serves fd 3 (it says so)" \
    grep -q 'listening on the socket systemd passed' "$T/sa.log"
tap_check "a second call reaches the same agent" \
    test "$(agent_pid)" = "$pid"
i=0
while [ "$(cat /proc/$pid/comm)" != p11enrolld-rest ] && [ $i -lt 300 ]; do
	sleep 0.05
	i=$((i + 1))
done
tap_check "it rests on systemd's socket" \
    test "$(cat /proc/$pid/comm)" = p11enrolld-rest
agent_kill "$pid"
tap_check "stopped, it leaves systemd's socket in place" test -S "$SOCK"
kill $sa 2>/dev/null
wait $sa 2>/dev/null
rm -f "$SOCK"

# LISTEN_* for another process: the agent binds its own socket
LISTEN_PID=1 LISTEN_FDS=1 "$P11ENROLLD" 2>"$T/own.log" &
own=$!
tap_at_exit "kill $own 2>/dev/null"
i=0
while [ ! -S "$SOCK" ] && [ $i -lt 100 ]; do
	sleep 0.05
	i=$((i + 1))
done
tap_check "LISTEN_PID of another process is ignored" sh -c \
    "grep -q 'listening on $SOCK' '$T/own.log' && '$P11ENROLL' --no-autostart status >/dev/null"
kill $own
wait $own 2>/dev/null

# the units (generated service) verify, where systemd-analyze can run here
unitdir=$top_builddir/systemd
if command -v systemd-analyze >/dev/null 2>&1 && [ -r "$unitdir/p11enrolld.service" ] &&
    systemd-analyze --user verify "$top_srcdir/systemd/p11enrolld.socket" >/dev/null 2>&1; then
	cp "$top_srcdir/systemd/p11enrolld.socket" "$unitdir/p11enrolld.service" "$T/"
	tap_check "systemd-analyze verify accepts the units" \
	    systemd-analyze --user verify "$T/p11enrolld.socket" "$T/p11enrolld.service"
else
	tap_skip "systemd-analyze --user verify cannot run here (no user manager)"
fi
tap_done
