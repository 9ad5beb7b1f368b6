#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# The agent and CLI spine: autostart, GetInfo, socket permissions, one
# agent per user, bad frames, bad configuration, hardening, peer uid.
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/agent.sh"

command -v socat >/dev/null || tap_skip_all "socat not installed (apt-get install socat)"

tap_plan 38
tap_tmpdir T
agent_env "$T"
cat >"$P11ENROLL_CONF" <<CONF
[service bank]
url = https://127.0.0.1:8443
CONF
mkdir -p "$T/etc/conf.d"
cat >"$T/etc/conf.d/10-second.conf" <<CONF
[service second]
url = https://127.0.0.1:9443
CONF
sock=$XDG_RUNTIME_DIR/p11enroll/agent.sock

# --- not running, autostart off: clear error, nothing created
out=$("$P11ENROLL" --no-autostart status 2>&1); rc=$?
tap_check "status --no-autostart fails with exit 1 when no agent runs" [ $rc -eq 1 ]
case $out in
*"the agent is not running"*"--no-autostart"*) tap_ok "and says the agent is not running and how to start it" ;;
*) tap_fail "and says the agent is not running and how to start it"; tap_diag "$out" ;;
esac
tap_check "and creates nothing" [ ! -e "$XDG_RUNTIME_DIR/p11enroll" ]
out=$("$P11ENROLL" --version 2>&1)
case $out in
"p11enroll "*"p11enrolld: not running") tap_ok "--version without an agent" ;;
*) tap_fail "--version without an agent"; tap_diag "$out" ;;
esac
tap_check "--version did not start an agent" [ ! -e "$sock" ]

# --- autostart
out=$("$P11ENROLL" status 2>&1); rc=$?
tap_check "status starts the agent" [ $rc -eq 0 ]
case $out in
*"agent:    running, version "*"services: bank, second"*) tap_ok "status shows the agent and the configured services" ;;
*) tap_fail "status shows the agent and the configured services"; tap_diag "$out" ;;
esac
tap_check "runtime directory is 0700" [ "$(stat -c %a "$XDG_RUNTIME_DIR/p11enroll")" = 700 ]
tap_check "socket is a socket, 0600" [ -S "$sock" -a "$(stat -c %a "$sock")" = 600 ]
tap_check "agent log is 0600" [ "$(stat -c %a "$XDG_RUNTIME_DIR/p11enroll/agent.log")" = 600 ]
tap_check "state directory created 0700" [ "$(stat -c %a "$XDG_STATE_HOME/p11enroll")" = 700 ]
pid=$(agent_pid)
tap_check "status --json gives the pid" [ -n "$pid" ]
json=$("$P11ENROLL" --json status)
case $json in
*'"state_dir": "'"$XDG_STATE_HOME/p11enroll"'"'*) tap_ok "status --json has the state dir" ;;
*) tap_fail "status --json has the state dir"; tap_diag "$json" ;;
esac
out=$("$P11ENROLL" --version 2>&1)
case $out in
*"p11enrolld "*"(running, pid $pid)"*) tap_ok "--version shows the running agent" ;;
*) tap_fail "--version shows the running agent"; tap_diag "$out" ;;
esac

# --- hardening
tap_check "agent cannot dump core (RLIMIT_CORE 0)" \
    grep -Eq '^Max core file size +0 +0 ' "/proc/$pid/limits"

# --- a second agent refuses to start and leaves the first alone
out=$("$P11ENROLLD" 2>&1); rc=$?
tap_check "second agent exits 1" [ $rc -eq 1 ]
case $out in
*"another agent is already running"*) tap_ok "and says another agent is running" ;;
*) tap_fail "and says another agent is running"; tap_diag "$out" ;;
esac
tap_check "first agent still serves" "$P11ENROLL" --no-autostart status

# --- raw frames
reply=$(printf '{"method":"GetInfo"}\0' | socat -t 5 - "UNIX-CONNECT:$sock" | tr -d '\0')
case $reply in
'{"parameters":{'*'"version":'*) tap_ok "raw GetInfo frame answered" ;;
*) tap_fail "raw GetInfo frame answered"; tap_diag "$reply" ;;
esac
reply=$(printf '{"method":"Nope"}\0' | socat -t 5 - "UNIX-CONNECT:$sock" | tr -d '\0')
case $reply in
*'"error":"UnknownMethod"'*) tap_ok "unknown method gets UnknownMethod" ;;
*) tap_fail "unknown method gets UnknownMethod"; tap_diag "$reply" ;;
esac
reply=$(printf '{"method":\0' | socat -t 5 - "UNIX-CONNECT:$sock" | tr -d '\0')
case $reply in
*'"error":"Protocol"'*) tap_ok "malformed JSON gets Protocol" ;;
*) tap_fail "malformed JSON gets Protocol"; tap_diag "$reply" ;;
esac
reply=$(printf '{"method":"GetInfo","parameters":{"x":1}}\0' | socat -t 5 - "UNIX-CONNECT:$sock" | tr -d '\0')
case $reply in
*'"error":"InvalidParameter"'*) tap_ok "unexpected parameter gets InvalidParameter" ;;
*) tap_fail "unexpected parameter gets InvalidParameter"; tap_diag "$reply" ;;
esac
reply=$(head -c 65536 /dev/zero | tr '\0' ' ' | socat -t 5 - "UNIX-CONNECT:$sock" | tr -d '\0')
case $reply in
*'"error":"TooLarge"'*) tap_ok "65536 bytes without a NUL get TooLarge" ;;
*) tap_fail "65536 bytes without a NUL get TooLarge"; tap_diag "$reply" ;;
esac
tap_check "agent survives bad frames" [ "$(agent_pid)" = "$pid" ]

# --- SIGTERM: clean stop, socket removed
kill "$pid"
i=0; while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
tap_check "agent stops on SIGTERM" [ ! -e "/proc/$pid" ]
tap_check "and removes its socket" [ ! -e "$sock" ]

# --- an agent killed between request and reply
P11ENROLL_CRASHPOINT=agent-before-reply "$P11ENROLLD" 2>"$T/crash.log" &
cpid=$!
i=0; while [ ! -S "$sock" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
out=$("$P11ENROLL" --no-autostart status 2>&1); rc=$?
case "$rc:$out" in
1:*"the connection was closed before the reply"*) tap_ok "a reply lost to a crash is a clear error" ;;
*) tap_fail "a reply lost to a crash is a clear error"; tap_diag "$rc $out" ;;
esac
wait $cpid; rc=$?
tap_check "the agent died of SIGKILL at the crash point" [ $rc -eq 137 ]
rm -f "$sock"

# --- config check
out=$("$P11ENROLL" config check 2>&1); rc=$?
case "$rc:$out" in
0:*"[service bank] url = https://127.0.0.1:8443"*"($P11ENROLL_CONF:2)"*"configuration OK"*) tap_ok "config check shows each value and where it was set" ;;
*) tap_fail "config check shows each value and where it was set"; tap_diag "$rc $out" ;;
esac
cp "$P11ENROLL_CONF" "$T/saved.conf"
printf '[cli]\nautostart = maybe\n' >>"$P11ENROLL_CONF"
printf '[service x y]\n' >"$T/etc/conf.d/20-bad.conf"
out=$("$P11ENROLL" config check 2>&1); rc=$?
case "$rc:$out" in
1:*"$P11ENROLL_CONF:4: "*"autostart"*"$T/etc/conf.d/20-bad.conf:1: "*"2 problems"*) tap_ok "config check lists every problem with file:line" ;;
*) tap_fail "config check lists every problem with file:line"; tap_diag "$rc $out" ;;
esac
cp "$T/saved.conf" "$P11ENROLL_CONF"
rm -f "$T/etc/conf.d/20-bad.conf"

# --- bad configuration: clear file:line error, no agent started
echo "urll = https://x" >>"$T/etc/conf.d/10-second.conf"
out=$("$P11ENROLL" status 2>&1); rc=$?
tap_check "status with a bad config fails" [ $rc -eq 1 ]
case $out in
*"$T/etc/conf.d/10-second.conf:3: "*"urll"*) tap_ok "and names file:line and the key" ;;
*) tap_fail "and names file:line and the key"; tap_diag "$out" ;;
esac
tap_check "and starts no agent" [ ! -e "$sock" ]
out=$("$P11ENROLLD" 2>&1); rc=$?
tap_check "the agent itself refuses the bad config too" [ $rc -eq 1 ]
sed -i '$d' "$T/etc/conf.d/10-second.conf"

# --- peer uid: an agent of uid 65534 refuses root
if [ "$(id -u)" != 0 ] || ! command -v setpriv >/dev/null; then
	tap_skip "peer of another uid is refused" "needs root and setpriv to run two uids"
	tap_skip "and the refusal is logged" "needs root and setpriv"
	tap_skip "and the agent still serves its own user" "needs root and setpriv"
	tap_skip "the agent's memory is closed to its own uid" "needs root and setpriv"
else
	U=$T/nobody
	mkdir -p "$U/run" "$U/state"
	chmod 0755 "$T" "$U"
	chown 65534:65534 "$U/run" "$U/state"
	chmod 0700 "$U/run"
	XDG_RUNTIME_DIR=$U/run XDG_STATE_HOME=$U/state P11ENROLL_CONF=$P11ENROLL_CONF \
	    setpriv --reuid=65534 --regid=65534 --clear-groups \
	    "$P11ENROLLD" 2>"$T/nobody.log" &
	npid=$!
	tap_at_exit "kill $npid"
	i=0; while [ ! -S "$U/run/p11enroll/agent.sock" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
	out=$(XDG_RUNTIME_DIR=$U/run "$P11ENROLL" --no-autostart status 2>&1); rc=$?
	case "$rc:$out" in
	1:*"the peer is not the agent's user"*) tap_ok "peer of another uid is refused" ;;
	*) tap_fail "peer of another uid is refused"; tap_diag "$rc $out" ;;
	esac
	tap_check "and the refusal is logged with the uid" \
	    grep -q "refused connection from uid 0 (pid [0-9]*): not the agent's user (uid 65534)" "$T/nobody.log"
	tap_check "and the agent still serves its own user" \
	    env XDG_RUNTIME_DIR="$U/run" setpriv --reuid=65534 --regid=65534 --clear-groups \
	    "$P11ENROLL" --no-autostart status
	# non-dumpable: even a process of the same uid cannot read its memory
	if setpriv --reuid=65534 --regid=65534 --clear-groups \
	    cat "/proc/$npid/environ" >/dev/null 2>&1; then
		tap_fail "the agent's memory is closed to its own uid (not dumpable)"
	else
		tap_ok "the agent's memory is closed to its own uid (not dumpable)"
	fi
	kill $npid
fi
tap_done
