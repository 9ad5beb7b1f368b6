#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# The agent at rest (issue 7; p11enrolld(8) "Resting"): with nothing to
# do for [agent] rest-after, p11enrolld execs p11enrolld-rest in its own
# process, which maps no TLS or PKCS#11 library.  A connection wakes it
# (same pid, same start time, the answer as before); a deadline wakes it
# (a credential expires while it rests: the record moves to EXPIRED and
# the hook runs); the lock stays held (a second agent is refused); SIGTERM
# stops it and removes the socket; rest-after = 0 keeps it up; a bad
# --resume is refused with its reason and changes nothing.

. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/agent.sh"

command -v python3 >/dev/null 2>&1 || tap_skip_all "python3 not installed"

tap_plan 23

tap_tmpdir T
agent_env "$T"
ST=$XDG_STATE_HOME/p11enroll
mkdir -p "$ST"
# three credentials: two not due for months, one expiring in 20 s
python3 "$top_srcdir/tests/tools/agent-idle.py" fill "$ST" 3
REC=$ST/credentials/c-0000000000000001.json
python3 - "$REC" <<'PY'
import json, os, sys, time
p = sys.argv[1]
r = json.load(open(p))
r["not_before"] = int(time.time()) - 100
r["not_after"] = int(time.time()) + 20
# the 30/14/7/1-day notices told already; the server's window opens at
# the expiry (no renewal before it)
r["renewal"] = {"new_certificate": None, "new_id": "", "new_spki": None,
                "next_action": 0, "notices": 15, "old_certificate": None,
                "old_id": "", "old_remove_at": 0, "old_same_key": False,
                "renew_before": 0, "retries": 0, "same_key": False,
                "wait": ""}
t = p + ".new"
with open(t, "w") as f:
    json.dump(r, f)
os.chmod(t, 0o600)
os.rename(t, p)
PY
cat >"$T/hook" <<EOS
#!/bin/sh
echo "\$P11ENROLL_EVENT \$P11ENROLL_CREDENTIAL" >>"$T/events"
EOS
chmod 0755 "$T/hook"
cat >"$P11ENROLL_CONF" <<EOF
[agent]
rest-after = 1s
[notify]
hook = $T/hook
desktop = no
EOF

comm() { cat "/proc/$1/comm" 2>/dev/null; }
# wait_comm PID NAME [SECONDS]: until the process is NAME
wait_comm()
{
	e=$(($(date +%s) + ${3:-15}))
	while [ "$(comm "$1")" != "$2" ] && [ "$(date +%s)" -lt "$e" ]; do
		sleep 0.1
	done
	[ "$(comm "$1")" = "$2" ]
}
state() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["state"])' "$REC"; }

"$P11ENROLL" --json status >"$T/s1.json" 2>"$T/s1.err"
pid=$(sed -n 's/^ *"pid": \([0-9]*\),*$/\1/p' "$T/s1.json" | head -n 1)
since=$(sed -n 's/^ *"started": \([0-9]*\),*$/\1/p' "$T/s1.json" | head -n 1)
tap_check "the agent runs" test -n "$pid"
tap_check "with nothing to do it rests (p11enrolld-rest, same pid)" \
    wait_comm "$pid" p11enrolld-rest
tap_check "resting, it maps no TLS, PKCS#11 or JSON library" sh -c \
    "! grep -E 'libcrypto|libssl|libcurl|libp11|libjansson|libudev' /proc/$pid/maps"
tap_check "the socket stays, for the next connection" \
    test -S "$XDG_RUNTIME_DIR/p11enroll/agent.sock"
# 0, 1, 2, the socket and the lock, and its own signalfd and timerfd
tap_check "it holds no other descriptor: 0, 1, 2, socket, lock, its signals and timer" \
    test "$(ls "/proc/$pid/fd" | wc -l)" = 7
LC_ALL=C "$P11ENROLLD" >"$T/second.out" 2>&1
rc=$?
tap_check "the lock stays held: a second agent is refused" sh -c \
    "test $rc != 0 && grep -q 'another agent\|already running\|agent.lock' '$T/second.out'"
cat "$T/second.out" >&2
tap_check "the second agent left the socket to the first" \
    test -S "$XDG_RUNTIME_DIR/p11enroll/agent.sock"

"$P11ENROLL" --no-autostart --json status >"$T/s2.json" 2>"$T/s2.err"
rc=$?
cat "$T/s2.err" >&2
tap_check "a connection wakes it: status answers" test $rc = 0
tap_check "the same agent: pid and start time" sh -c \
    "grep -q '\"pid\": $pid,' '$T/s2.json' &&
     grep -q '\"started\": $since' '$T/s2.json'"
tap_check "it tracks the same three credentials" \
    test "$(grep -c '"credential": "c-' "$T/s2.json")" = 3
# three calls sent at once: answered in order, one after the other
python3 - "$XDG_RUNTIME_DIR/p11enroll/agent.sock" >"$T/pipe.out" 2>&1 <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall(b'{"method":"GetInfo"}\0{"method":"Nope"}\0{"method":"GetInfo"}\0')
buf = b""
while buf.count(b"\0") < 3:
    chunk = s.recv(65536)
    if not chunk:
        break
    buf += chunk
for m in buf.split(b"\0")[:3]:
    print("version" if b'"version"' in m else "error" if b'"error"' in m else "?")
PY
cat "$T/pipe.out" >&2
tap_check "three calls sent at once are answered in order" \
    test "$(tr '\n' ' ' <"$T/pipe.out")" = "version error version "
tap_check "and rests again" wait_comm "$pid" p11enrolld-rest

# the deadline: the credential expires while the agent rests
tap_check "the expiry is still ahead, the agent resting" sh -c \
    "test '$(state)' = INSTALLED && test '$(comm "$pid")' = p11enrolld-rest"
e=$(($(date +%s) + 40))
until [ "$(state)" = EXPIRED ] || [ "$(date +%s)" -ge "$e" ]; do
	sleep 0.2
done
tap_check "woken by the deadline: the record is EXPIRED" test "$(state)" = EXPIRED
tap_check "the hook ran once for the expiry" \
    test "$(grep -c '^expired c-0000000000000001$' "$T/events" 2>/dev/null)" = 1
tap_check "and it rests again" wait_comm "$pid" p11enrolld-rest

# the configuration edited into an error while it rests: the call that
# wakes it fails, the agent stops as it would not start, taking its
# socket; the journal is as it was
cp "$P11ENROLL_CONF" "$T/good.conf"
printf '[agent]\nrest-after = soon\n' >"$P11ENROLL_CONF"
tap_check "config check names the bad rest-after as file:line" conf_check 1 \
    "$P11ENROLL_CONF:2: bad value for 'rest-after': expected a duration"
ls -l "$ST/credentials" >"$T/journal.before"
# (the command itself refuses the bad file: a raw call wakes the agent)
python3 - "$XDG_RUNTIME_DIR/p11enroll/agent.sock" >"$T/badconf.out" 2>&1 <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(20)
s.connect(sys.argv[1])
s.sendall(b'{"method":"GetInfo"}\0')
try:
    print("answered" if s.recv(65536) else "closed")
except OSError as e:
    print("closed", e)
PY
cat "$T/badconf.out" >&2
i=0
while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do
	sleep 0.05
	i=$((i + 1))
done
tap_check "a bad configuration at the wake: no answer, the agent is gone" \
    sh -c "grep -q '^closed' '$T/badconf.out' && ! kill -0 $pid 2>/dev/null &&
     test ! -e '$XDG_RUNTIME_DIR/p11enroll/agent.sock'"
ls -l "$ST/credentials" >"$T/journal.after"
tap_check "... its log says why, and the journal is untouched" sh -c \
    "grep -q 'rest-after' '$XDG_RUNTIME_DIR/p11enroll/agent.log' &&
     grep -q 'not starting' '$XDG_RUNTIME_DIR/p11enroll/agent.log' &&
     cmp -s '$T/journal.before' '$T/journal.after'"
cp "$T/good.conf" "$P11ENROLL_CONF"
"$P11ENROLL" --json status >"$T/s4.json" 2>&1
pid=$(sed -n 's/^ *"pid": \([0-9]*\),*$/\1/p' "$T/s4.json" | head -n 1)
wait_comm "$pid" p11enrolld-rest

agent_kill "$pid"
tap_check "SIGTERM stops it at rest and removes the socket" sh -c \
    "! kill -0 $pid 2>/dev/null &&
     test ! -e '$XDG_RUNTIME_DIR/p11enroll/agent.sock'"

# rest-after = 0: never
printf '[agent]\nrest-after = 0\n' >"$P11ENROLL_CONF"
# (started by a command holding a descriptor it does not pass on)
"$P11ENROLL" --json status >"$T/s3.json" 2>&1 9>"$T/leak"
pid=$(sed -n 's/^ *"pid": \([0-9]*\),*$/\1/p' "$T/s3.json" | head -n 1)
sleep 3
tap_check "rest-after = 0: still the agent after 3 s" \
    test "$(comm "$pid")" = p11enrolld
tap_check "the agent the command started has none of the command's descriptors" \
    sh -c "! ls -l /proc/$pid/fd | grep -q '$T/leak'"

# --resume is the agent's own: a bad one is refused, nothing changes
ls -l "$XDG_RUNTIME_DIR/p11enroll" "$ST" >"$T/before"
LC_ALL=C "$P11ENROLLD" --resume=5,6,0,0,0,0 5<"$P11ENROLL_CONF" \
    6<"$P11ENROLL_CONF" >"$T/bad.out" 2>&1
rc1=$?
LC_ALL=C "$P11ENROLLD" --resume=junk >>"$T/bad.out" 2>&1
rc2=$?
"$P11ENROLL_REST" 3 0 - /bin/true >>"$T/bad.out" 2>&1 3<"$P11ENROLL_CONF"
rc3=$?
cat "$T/bad.out" >&2
ls -l "$XDG_RUNTIME_DIR/p11enroll" "$ST" >"$T/after"
tap_check "a bad --resume: exit 2 with the reason, the agent unharmed" sh -c \
    "test $rc1 = 2 && test $rc2 = 2 && test $rc3 = 2 &&
     grep -q 'fd 3 is not a listening socket: not resting' '$T/bad.out' &&
     grep -q 'fd 5 is not a listening Unix stream socket' '$T/bad.out' &&
     grep -q 'resume=junk: not LISTEN-FD' '$T/bad.out' &&
     cmp -s '$T/before' '$T/after' && test '$(agent_pid)' = '$pid'"
tap_done
