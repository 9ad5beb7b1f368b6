#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# The PIN prompt on a real terminal (a pseudo-terminal driven by
# tests/tools/ptyrun.py): the prompt names the token, the PIN is not
# echoed, and it never reaches the agent's log or state.
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/softhsm.sh"
. "$top_srcdir/tests/lib/agent.sh"

command -v python3 >/dev/null || tap_skip_all "python3 not installed (apt-get install python3)"
tap_plan 8
tap_tmpdir T
agent_env "$T"
# a PIN that cannot appear by accident
PIN=PINCANARY7f3a91
softhsm_setup tty "$PIN" 12345678 >&2 || tap_bail "cannot create a SoftHSM2 token"
ptyrun="$top_srcdir/tests/tools/ptyrun.py"
uri="pkcs11:token=tty"

out=$(echo "$PIN" | python3 "$ptyrun" "PIN for" -- "$P11ENROLL" token keygen "$uri" --id 0a0b 2>&1); rc=$?
tap_diag "$out"
tap_check "keygen with the PIN typed at the prompt succeeds" [ $rc -eq 0 ]
case $out in
*"PIN for 'tty' (serial $SOFTHSM_SERIAL): "*) tap_ok "the prompt names the token and its serial" ;;
*) tap_fail "the prompt names the token and its serial" ;;
esac
case $out in
*"$PIN"*) tap_fail "the PIN is not echoed" ;;
*) tap_ok "the PIN is not echoed" ;;
esac
case $out in
*"generated ec-p256 key pair, id 0a0b"*) tap_ok "the key was generated" ;;
*) tap_fail "the key was generated" ;;
esac

# a wrong PIN at the prompt: one refusal, nothing retried
out=$(echo "not-the-pin" | python3 "$ptyrun" "PIN for" -- "$P11ENROLL" token keygen "$uri" 2>&1); rc=$?
case "$rc:$out" in
1:*"the PIN is incorrect"*) tap_ok "a wrong PIN at the prompt is refused with exit 1" ;;
*) tap_fail "a wrong PIN at the prompt is refused with exit 1"; tap_diag "$out" ;;
esac

# without a terminal and without --pin-stdin there is nobody to ask
out=$(setsid "$P11ENROLL" token keygen "$uri" </dev/null 2>&1); rc=$?
case "$rc:$out" in
1:*"no terminal to ask for the PIN"*) tap_ok "no terminal: a clear error" ;;
*) tap_fail "no terminal: a clear error"; tap_diag "$rc $out" ;;
esac

# the PIN went through the agent: nothing of it in its log or state
log=$XDG_RUNTIME_DIR/p11enroll/agent.log
tap_check "the agent logged something" [ -s "$log" ]
if grep -rq "$PIN" "$log" "$XDG_STATE_HOME" 2>/dev/null; then
	tap_fail "the PIN is in no log or state file"
else
	tap_ok "the PIN is in no log or state file"
fi
tap_done
