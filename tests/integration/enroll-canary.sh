#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# The secrets canary (security.md b8): an enrollment with a canary PIN,
# password and OTP, then a core of the still-running agent taken by root
# with gcore (the agent is non-dumpable: only CAP_SYS_PTRACE gets in),
# and a search of the core, the state directory, the agent's and the
# RA's logs, the RA database and the agent's /proc environ and cmdline.
# The PIN and the password must be nowhere.  The OTP is six digits, which
# a core holds by chance: it is checked only as a member of the journal
# files and in the logs, where a 6-digit run means something.

. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/softhsm.sh"
. "$top_srcdir/tests/lib/agent.sh"
. "$top_srcdir/tests/lib/ra.sh"
. "$top_srcdir/tests/lib/enroll.sh"

for c in softhsm2-util oathtool python3 sqlite3 openssl curl gcore; do
	command -v $c >/dev/null 2>&1 ||
	    tap_skip_all "$c not installed (gcore: Debian package gdb)"
done
[ "$(id -u)" = 0 ] || tap_skip_all "gcore of a non-dumpable agent needs root"
"$RA" --help 2>/dev/null | grep -q '^  serve' ||
    tap_skip_all "p11enroll-ra serve not built"

tap_plan 13

tap_tmpdir T
agent_env "$T"
PIN='PinCanary-b8-5e07d1c2'
PW='PwCanary-b8-93af61e4'
softhsm_setup p11e-canary "$PIN" >&2 || tap_bail "cannot create a SoftHSM2 token"
# softhsm_setup exports the PIN for tests that pass it in argv: the agent
# would inherit it (it did: the first run of this test found it there)
unset SOFTHSM_PIN SOFTHSM_SO_PIN
en_ra_start || { cat "$T/ra.log" >&2; tap_bail "p11enroll-ra serve did not start"; }
en_user S0001 || tap_bail "user add failed"

otp=$(en_otp S0001)
printf '%s\n%s\n%s\n' "$PIN" "$PW" "$otp" | "$P11ENROLL" enroll \
    --invitation "$T/S0001.inv" --token pkcs11:token=p11e-canary \
    --secrets-stdin >"$T/out" 2>&1
rc=$?
cat "$T/out" >&2
tap_check "the enrollment with the canaries succeeds" test $rc = 0
# one more call that takes the PIN (a token listing with login), so the
# agent has handled it twice
printf '%s\n' "$PIN" | "$P11ENROLL" --pin-stdin token objects --login \
    pkcs11:token=p11e-canary >/dev/null 2>&1
pid=$(agent_pid)
tap_check "the agent still runs (pid $pid)" kill -0 "${pid:-0}"

timeout 60 gcore -o "$T/core" "$pid" >"$T/gcore.log" 2>&1
core=$T/core.$pid
tap_check "gcore took a core of the agent" test -s "$core"
tap_diag "core: $(du -k "$core" 2>/dev/null | cut -f1) KiB"

# hits WHAT FILE...: how many of FILE contain WHAT (binary included)
hits()
{
	h_w=$1
	shift
	grep -l -a -F -r -- "$h_w" "$@" 2>/dev/null | wc -l
}
# in_core SECRET: the core holds SECRET as UTF-8 or as UTF-16LE (what a
# wide-string copy would hold); offsets on stderr
in_core()
{
	python3 - "$core" "$1" <<'EOF'
import mmap, sys
with open(sys.argv[1], "rb") as f:
    m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    found = False
    for enc in ("utf-8", "utf-16-le"):
        w = sys.argv[2].encode(enc)
        i = m.find(w)
        while i >= 0:
            found = True
            sys.stderr.write("%s at %d: %r\n" % (enc, i, m[max(0, i - 64):i + len(w) + 64]))
            i = m.find(w, i + 1)
    sys.exit(0 if found else 1)
EOF
}
agentlog=$XDG_RUNTIME_DIR/p11enroll/agent.log
cp "/proc/$pid/environ" "$T/environ" 2>/dev/null
cp "/proc/$pid/cmdline" "$T/cmdline" 2>/dev/null

tap_check "the PIN is not in the agent's core (UTF-8 or UTF-16)" \
    eval '! in_core "$PIN"'
tap_check "nor the password" eval '! in_core "$PW"'
tap_check "nor the session request's OTP member (\"otp\":\"$otp\")" \
    eval '! in_core "\"otp\":\"$otp\""'
tap_check "a canary check that can fail: the core has the token label" \
    in_core p11e-canary
for what in PIN PW; do
	eval "v=\$$what"
	tap_check "the $what is in no state file, log, RA file or /proc entry" \
	    test "$(hits "$v" "$XDG_STATE_HOME" "$XDG_RUNTIME_DIR" \
	    "$T/ra.log" "$D" "$T/environ" "$T/cmdline" "$T/out")" = 0
done
tap_check "the PIN is not in the agent's memory maps' files either" sh -c \
    "! grep -a -q -F -- '$PIN' /proc/$pid/maps"
tap_check "no journal file has an otp, password or pin member" python3 -c '
import glob, json, sys
def walk(v):
    if isinstance(v, dict):
        for k, x in v.items():
            assert k not in ("otp", "password", "pin"), k
            walk(x)
    elif isinstance(v, list):
        for x in v:
            walk(x)
fs = glob.glob(sys.argv[1] + "/**/*.json", recursive=True)
assert fs
for f in fs:
    walk(json.load(open(f)))
' "$XDG_STATE_HOME"
tap_check "the OTP ($otp) is in no log" sh -c \
    "! grep -q -- '$otp' '$agentlog' '$T/ra.log'"
tap_check "the core has not been left behind outside the test directory" \
    test ! -e "core.$pid"

tap_done
