#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# The token commands as uid 65534 with p11fault registered in front of
# SoftHSM2 (tests/lib/p11kit-env.sh): the suite of tests/lib/tokensuite.sh,
# then what only injected faults show: the token logged out after every
# operation (p11fault's call log), a write-protected token, a token
# removed mid-operation, a full token, an absent token, and the PIN flags
# (final try, locked, to be changed, count low).  Agent and CLI run as
# 65534 (the agent refuses other uids).

. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/softhsm.sh"
. "$top_srcdir/tests/lib/p11kit-env.sh"
. "$top_srcdir/tests/lib/agent.sh"
. "$top_srcdir/tests/lib/pki.sh"
. "$top_srcdir/tests/lib/tokensuite.sh"

module=$top_builddir/tests/p11fault/p11fault.so
[ -r "$module" ] || tap_bail "$module not built"
reason=$(p11kit_env_check) || tap_skip_all "$reason"
command -v softhsm2-util >/dev/null 2>&1 ||
    tap_skip_all "softhsm2-util not installed (Debian package softhsm2)"
command -v python3 >/dev/null 2>&1 ||
    tap_skip_all "python3 not installed (Debian package python3)"
# 65534 must reach the programs
setpriv --reuid=65534 --regid=65534 --clear-groups test -x "$P11ENROLLD" ||
    tap_skip_all "uid 65534 cannot run $P11ENROLLD (build directory mode)"

U=65534
tap_tmpdir T
chmod 0755 "$T"
mkdir -p "$T/run" "$T/state" "$T/home" "$T/work"
chmod 0700 "$T/run"
chown "$U:$U" "$T/run" "$T/state" "$T/home" "$T/work"
XDG_RUNTIME_DIR=$T/run
XDG_STATE_HOME=$T/state
P11ENROLL_CONF=$T/etc/p11enroll.conf
P11ENROLL_AGENT=$P11ENROLLD
export XDG_RUNTIME_DIR XDG_STATE_HOME P11ENROLL_CONF P11ENROLL_AGENT

softhsm_setup p11e-fault-a >&2 || tap_bail "cannot create a SoftHSM2 token"
softhsm2-util --init-token --free --label p11e-fault-b --pin 1111 \
    --so-pin 12345678 >&2 || tap_bail "cannot create a second token"
chown -R "$U:$U" "$SOFTHSM_DIR"
chmod 0755 "$SOFTHSM_DIR"
p11kit_env_setup || tap_bail "cannot make the p11-kit home"
p11kit_env_add_module p11fault "$module" || tap_bail "cannot register p11fault"
P11FAULT_CONF=$P11KIT_HOME/p11fault.conf
export P11FAULT_CONF
calls=$P11KIT_HOME/calls.log
agentlog=$XDG_RUNTIME_DIR/p11enroll/agent.log

# conf DIRECTIVE...: the faults, replaced atomically (p11fault re-reads).
conf()
{
	{
		echo "module = $SOFTHSM_MODULE"
		echo "log = $calls"
		printf '%s\n' "$@"
	} >"$P11FAULT_CONF.tmp" &&
	chown "$U:$U" "$P11FAULT_CONF.tmp" &&
	mv "$P11FAULT_CONF.tmp" "$P11FAULT_CONF"
}
conf
: >"$calls"
chown "$U:$U" "$calls"

run65534()
{
	p11kit_as_user "$P11ENROLL" "$@"
}
own65534()
{
	chown "$U:$U" "$@"
}

# The agent is 65534's: stop it by its pid, which only 65534 may ask for.
fault_agent_stop()
{
	p=$(run65534 --no-autostart --json status 2>/dev/null |
	    sed -n 's/^ *"pid": \([0-9]*\),*$/\1/p')
	[ -n "$p" ] || return 0
	kill "$p" 2>/dev/null
	i=0
	while kill -0 "$p" 2>/dev/null && [ $i -lt 100 ]; do
		sleep 0.05
		i=$((i + 1))
	done
}
tap_at_exit fault_agent_stop

pki_setup "$T/pki" >&2 || tap_bail "cannot make the test CAs"
chmod 0755 "$T/pki"

b_serial=$(softhsm2-util --show-slots | awk '
    /Serial number:/ { s = $3 } /Label:/ && $2 == "p11e-fault-b" { print s; exit }')
TS_NAME=p11fault
TS_URI="pkcs11:token=p11e-fault-a"
TS_LABEL=p11e-fault-a
TS_PIN=$SOFTHSM_PIN
TS_KEYTYPES="ec-p256 ec-p384 rsa-2048 rsa-3072 rsa-4096"
TS_UNSUPPORTED=
TS_OTHER_URI="pkcs11:model=SoftHSM%20v2;manufacturer=SoftHSM%20project;serial=$b_serial;token=p11e-fault-b"
TS_AMBIG_URI="pkcs11:model=SoftHSM%20v2;manufacturer=SoftHSM%20project"
TS_DIR=$T/work
TS_AGENT_LOG=$agentlog
TS_RUN=run65534
TS_OWN=own65534
TS_CALLS=$calls

# --- the suite, as 65534 through p11fault
tokensuite_run
tap_check "the agent runs as uid 65534" eval \
    '[ "$(stat -c %u "$XDG_RUNTIME_DIR/p11enroll/agent.sock")" = 65534 ]'

# --- logged out after each operation: in the call log of the whole
# suite, every successful C_Login is followed by a successful C_Logout
# (so the session was still open: a token logs out by itself only when
# its last session closes) before C_Finalize.  libp11 closes its own
# signing session in between; the login is ours.
logins=$(grep -c '^C_Login rv=0x00000000' "$calls")
bad=$(awk '
    /^C_Login rv=0x00000000/ { if (in_) print NR ": login while logged in"; in_ = 1; next }
    /^C_Logout rv=0x00000000/ { if (!in_) print NR ": logout without login"; in_ = 0; next }
    /^C_Logout / { print NR ": " $0 }
    /^C_Finalize / && in_ { print NR ": finalized while logged in"; in_ = 0 }
    END { if (in_) print "logged in at the end" }' "$calls")
[ -z "$bad" ] || tap_diag "$bad"
tap_check "each of the $logins logins is followed by C_Logout before C_Finalize" \
    eval '[ "$logins" -gt 20 ] && [ -z "$bad" ]'

# A certificate for the key 0a0b0c (the suite made it) to import below.
printf '%s\n' "$TS_PIN" | run65534 --pin-stdin token csr "$TS_URI" \
    --id 0a0b0c --subject "/CN=fault" --out "$TS_DIR/f.csr" >&2
openssl x509 -req -in "$TS_DIR/f.csr" -CA "$PKI_CLIENT_CA_CERT" \
    -CAkey "$PKI_CLIENT_CA_KEY" -CAserial "$TS_DIR/ca.srl" -days 2 \
    -out "$TS_DIR/f.pem" >&2 2>&1 || tap_bail "cannot sign the fault CSR"
ts_snapshot "$T/before"
tap_check "(object list taken)" [ -s "$T/before" ]

# fault_case DESC EXIT MESSAGE RV CLI-ARGS...: with the faults set, the
# command fails with EXIT and MESSAGE, the agent log names RV, and the
# token keeps its objects.
agent_has()
{
	grep -Fq "$1" "$agentlog"
}

# --- write-protected
conf "token-flags = +CKF_WRITE_PROTECTED" \
    "fail = C_GenerateKeyPair 1+ CKR_TOKEN_WRITE_PROTECTED" \
    "fail = C_CreateObject 1+ CKR_TOKEN_WRITE_PROTECTED"
ts_do --json tokens "$TS_URI"
tap_check "write-protected: tokens shows the flag" \
    ts_json "j['tokens'][0]['flags']['write_protected']"
ts_pin "$TS_PIN" token keygen "$TS_URI"
ts_expect "write-protected: keygen fails with TokenReadOnly" 1 \
    "p11enroll: error: the token is write-protected: C_GenerateKeyPair on token '$TS_LABEL' (serial $SOFTHSM_SERIAL) returned CKR_TOKEN_WRITE_PROTECTED."
tap_check "... the agent log names the call and CK_RV" \
    agent_has "C_GenerateKeyPair: CKR_TOKEN_WRITE_PROTECTED (0x000000e2)"
ts_pin "$TS_PIN" token import "$TS_URI" "$TS_DIR/f.pem"
ts_expect "write-protected: import fails with TokenReadOnly" 1 \
    "p11enroll: error: the token is write-protected: C_CreateObject on token '$TS_LABEL' (serial $SOFTHSM_SERIAL) returned CKR_TOKEN_WRITE_PROTECTED."
ts_unchanged "$T/before" "write-protected: nothing created"

# --- removed in the middle of key generation
conf "fail = C_GenerateKeyPair 1 CKR_DEVICE_REMOVED"
ts_pin "$TS_PIN" token keygen "$TS_URI" --type ec-p384
ts_expect "removed mid-keygen: TokenAbsent, exit 4" 4 \
    "p11enroll: error: the token is not present: C_GenerateKeyPair on token '$TS_LABEL' (serial $SOFTHSM_SERIAL) returned CKR_DEVICE_REMOVED."
tap_check "... the agent log names the call and CK_RV" \
    agent_has "C_GenerateKeyPair: CKR_DEVICE_REMOVED (0x00000032)"
conf
ts_unchanged "$T/before" "removed mid-keygen: no key left behind"

# --- full
conf "fail = C_CreateObject 1+ CKR_DEVICE_MEMORY"
ts_pin "$TS_PIN" token import "$TS_URI" "$TS_DIR/f.pem"
ts_expect "full token: import fails with TokenFull" 1 \
    "p11enroll: error: the token has no room left: C_CreateObject on token '$TS_LABEL' (serial $SOFTHSM_SERIAL) returned CKR_DEVICE_MEMORY."
tap_check "... the agent log names the call and CK_RV" \
    agent_has "C_CreateObject: CKR_DEVICE_MEMORY (0x00000031)"
ts_unchanged "$T/before" "full token: no certificate stored"

# --- absent
conf "token-absent = yes"
ts_pin "$TS_PIN" token keygen "$TS_URI"
ts_expect "absent token: keygen exits 4 with TokenNotFound" 4 \
    "p11enroll: error: no token matches the URI: No token matches $TS_URI. Tokens present: none."
ts_do token objects "$TS_URI"
ts_expect "absent token: objects exits 4 too" 4 \
    "p11enroll: error: no token matches the URI: No token matches $TS_URI. Tokens present: none."
conf
ts_unchanged "$T/before" "absent token: nothing changed"

# --- PIN flags: checked before C_Login
conf "token-flags = +CKF_USER_PIN_FINAL_TRY"
l=$(wc -l <"$calls")
ts_pin "$TS_PIN" token keygen "$TS_URI"
ts_expect "final try: the CLI warns" 1 \
    "p11enroll: warning: one more wrong PIN locks '$TS_LABEL' (--final-try to try anyway)"
ts_expect "... and without --final-try refuses: PinFinalTry" 1 \
    "p11enroll: error: one more wrong PIN locks the token: '$TS_LABEL': one more wrong PIN locks it; not trying without an explicit confirmation."
tap_check "... without calling C_Login" eval \
    '! tail -n +"$((l + 1))" "$calls" | grep -q "^C_Login "'
conf
ts_unchanged "$T/before" "... nothing changed"
conf "token-flags = +CKF_USER_PIN_FINAL_TRY"
l=$(wc -l <"$calls")
ts_pin "$TS_PIN" --final-try --json token objects "$TS_URI" --login
tap_check "final try: with --final-try it logs in (once)" eval \
    '[ "$rc" -eq 0 ] && [ "$(ts_count private-key)" -gt 0 ] &&
    [ "$(tail -n +"$((l + 1))" "$calls" | grep -c "^C_Login rv=0x00000000")" -eq 1 ]'
printf '%s\n' "$TS_PIN" >"$TS_DIR/pin"
chmod 0600 "$TS_DIR/pin"
own65534 "$TS_DIR/pin"
ts_do --final-try --json token objects "$TS_URI?pin-source=file:$TS_DIR/pin" --login
tap_check "final try: --final-try works with a pin-source too" eval \
    '[ "$rc" -eq 0 ] && [ "$(ts_count private-key)" -gt 0 ]'

conf "token-flags = +CKF_USER_PIN_LOCKED"
l=$(wc -l <"$calls")
ts_pin "$TS_PIN" token keygen "$TS_URI"
ts_expect "PIN locked: exit 5, PinLocked" 5 \
    "p11enroll: error: the PIN is locked: The user PIN of '$TS_LABEL' is locked."
tap_check "... without calling C_Login" eval \
    '! tail -n +"$((l + 1))" "$calls" | grep -q "^C_Login "'
ts_do --json token objects "$TS_URI" --login
ts_expect "PIN locked: objects --login exits 5 without asking for a PIN" 5 \
    "p11enroll: error: the PIN is locked"

conf "token-flags = +CKF_USER_PIN_TO_BE_CHANGED"
l=$(wc -l <"$calls")
ts_pin "$TS_PIN" token keygen "$TS_URI"
ts_expect "PIN to be changed: PinExpired" 1 \
    "p11enroll: error: the token requires its PIN to be changed first: '$TS_LABEL' requires its PIN to be changed before use."
tap_check "... without calling C_Login" eval \
    '! tail -n +"$((l + 1))" "$calls" | grep -q "^C_Login "'

conf "token-flags = +CKF_USER_PIN_COUNT_LOW"
ts_pin "$TS_PIN" --json token objects "$TS_URI" --login
ts_expect "PIN count low: the CLI warns before asking" 0 \
    "p11enroll: warning: '$TS_LABEL' says few PIN tries are left"
conf
ts_unchanged "$T/before" "after the PIN flags: nothing changed"

tap_plan "$tap_n"
tap_done
