#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# User enrollment under faults (security.md b3):
#   F7   the simpleenroll answer is lost: tests/tools/lossy-proxy between
#        the agent and the RA resets the enrollment's connection (the CA
#        certificates, the session and simpleenroll go over one) inside
#        its last answer (the request got there, the certificate did
#        not come back); enroll --resume gets the same certificate (same
#        serial) by re-delivery: one certificate in the RA, one key pair
#        and one certificate on the token.
#   F12  a full token at the certificate write, and
#   F11  the token removed at the write (then still absent on the first
#        resume), both through tests/p11fault as uid 65534: the issued
#        certificate stays in the journal (ISSUED), a clear error, no
#        second issuance; once the fault is gone enroll --resume writes
#        it: exactly one certificate on the token and in the RA.
#   A reissue whose predecessor's pair cannot be removed from the token
#   (C_DestroyObject fails): the new certificate is installed, the old
#   objects stay and the agent's log says what removes them.

. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/softhsm.sh"
. "$top_srcdir/tests/lib/p11kit-env.sh"
. "$top_srcdir/tests/lib/agent.sh"
. "$top_srcdir/tests/lib/ra.sh"
. "$top_srcdir/tests/lib/enroll.sh"

for c in softhsm2-util oathtool python3 sqlite3 openssl curl setpriv; do
	command -v $c >/dev/null 2>&1 || tap_skip_all "$c not installed"
done
"$RA" --help 2>/dev/null | grep -q '^  serve' ||
    tap_skip_all "p11enroll-ra serve not built"
proxy=$top_builddir/tests/tools/lossy-proxy
module=$top_builddir/tests/p11fault/p11fault.so
[ -x "$proxy" ] && [ -r "$module" ] || tap_bail "lossy-proxy or p11fault not built"
reason=$(p11kit_env_check) || tap_skip_all "$reason"

tap_plan 19

U=65534
tap_tmpdir T
chmod 0755 "$T"
agent_env "$T"
PIN='Pin-Faults-a61f0c'
softhsm_setup p11e-lost "$PIN" >&2 || tap_bail "cannot create a SoftHSM2 token"
en_ra_start || { cat "$T/ra.log" >&2; tap_bail "p11enroll-ra serve did not start"; }

# cred USER: the credential name of USER in `p11enroll list`
cred()
{
	${CMD_PREFIX:-} "$P11ENROLL" --json list 2>/dev/null | python3 -c '
import json, sys
c = [x for x in json.load(sys.stdin)["credentials"] if x["user_id"] == sys.argv[1]]
print(c[0]["credential"] if c else "")' "$1"
}
# field USER KEY: a member of USER's credential in `p11enroll list`
field()
{
	${CMD_PREFIX:-} "$P11ENROLL" --json list 2>/dev/null | python3 -c '
import json, sys
c = [x for x in json.load(sys.stdin)["credentials"] if x["user_id"] == sys.argv[1]][0]
v = c
for k in sys.argv[2].split("."):
    v = v.get(k, "") if isinstance(v, dict) else ""
print(v)' "$1" "$2"
}
# start_proxy ARGS: a fresh lossy-proxy to the RA ($PP, log $T/proxy.log)
start_proxy()
{
	rm -f "$T/proxy.port"
	: >"$T/proxy.log"
	"$proxy" --connect "127.0.0.1:$PORT" --port-file "$T/proxy.port" \
	    --log "$T/proxy.log" "$@" >/dev/null 2>&1 &
	proxy_pid=$!
	tap_at_exit "kill $proxy_pid"
	i=0
	while [ ! -s "$T/proxy.port" ] && [ $i -lt 100 ]; do
		sleep 0.05
		i=$((i + 1))
	done
	PP=$(cat "$T/proxy.port")
}
stop_proxy()
{
	kill "$proxy_pid" 2>/dev/null
	wait "$proxy_pid" 2>/dev/null
}
# via_proxy USER: USER's invitation with the proxy's URL
via_proxy()
{
	python3 - "$T/$1.inv" "https://127.0.0.1:$PP" <<'EOF'
import json, sys
i = json.load(open(sys.argv[1]))
i["url"] = sys.argv[2]
json.dump(i, open(sys.argv[1], "w"))
EOF
}

# --- F7: the lost answer.  Which connection is the enrollment's, how
# many bytes it carries and how many a handshake plus a short answer
# take, from one enrollment through a proxy that loses nothing; the cut
# is 200 bytes before its end, inside simpleenroll's answer (the
# certificate, near 1,000 bytes with its headers, is its last).
softhsm2-util --init-token --free --label p11e-probe --pin "$PIN" \
    --so-pin 12345678 >/dev/null 2>&1 || tap_bail "cannot create a token"
en_user L0000 && en_user L0001 || tap_bail "user add failed"
start_proxy
via_proxy L0000
en_enroll L0000 pkcs11:token=p11e-probe >"$T/out" 2>&1 ||
    { cat "$T/out" >&2; tap_bail "the enrollment through the proxy failed"; }
curl -s -o /dev/null --cacert "$D/server-ca.crt" "https://127.0.0.1:$PP/api/v1/policy"
stop_proxy
cat "$T/proxy.log" >&2
n=$(grep -c '^conn [0-9]*:' "$T/proxy.log")
nenroll=$((n - 1))
small=$(sed -n "s/^conn $n: .*response bytes \([0-9]*\).*/\1/p" "$T/proxy.log")
big=$(sed -n "s/^conn $nenroll: .*response bytes \([0-9]*\).*/\1/p" "$T/proxy.log")
tap_diag "the enrollment is connection $nenroll ($big bytes); handshake + policy: $small bytes"
tap_check "a cut point inside the certificate's answer" \
    test "${small:-0}" -gt 0 -a "${big:-0}" -gt $((${small:-0} + 300))

start_proxy --reset-conn "$nenroll" --reset-after $((${big:-0} - 200))
via_proxy L0001
en_enroll L0001 pkcs11:token=p11e-lost >"$T/out" 2>&1
rc=$?
cat "$T/out" "$T/proxy.log" >&2
tap_check "the answer to simpleenroll is lost: the enrollment fails" sh -c \
    "test $rc != 0 && grep -q '^conn $nenroll: .*reset' '$T/proxy.log'"
s1=$(en_ra_serial L0001)
tap_check "though the RA issued the certificate ($s1)" test -n "$s1"
tap_check "the journal keeps the request (SUBMITTED)" \
    test "$(field L0001 state)" = SUBMITTED
c1=$(cred L0001)
printf '%s\n%s\n%s\n' "$PIN" "$PW" "$(en_otp L0001 30)" |
    "$P11ENROLL" enroll --resume "$c1" --secrets-stdin >"$T/out" 2>&1
rc=$?
cat "$T/out" >&2
stop_proxy
tap_check "enroll --resume finishes it" test $rc = 0
tap_check "with the same certificate (same serial)" sh -c \
    "grep -q 'serial   $s1' '$T/out' && test '$(en_ra_serial L0001)' = '$s1'"
tap_check "one key pair and one certificate on the token" sh -c \
    "test $(en_count pkcs11:token=p11e-lost private-key) = 1 && test $(en_count pkcs11:token=p11e-lost public-key) = 1 && test $(en_count pkcs11:token=p11e-lost certificate) = 1"
agent_stop

# --- F12 and F11 through p11fault, as 65534 (p11-kit reads per-user
# module configs only for a non-root user)
mkdir -p "$T/u/run" "$T/u/state" "$T/u/etc"
chmod 0700 "$T/u/run"
chown -R "$U:$U" "$T/u"
XDG_RUNTIME_DIR=$T/u/run
XDG_STATE_HOME=$T/u/state
P11ENROLL_CONF=$T/u/etc/p11enroll.conf
export XDG_RUNTIME_DIR XDG_STATE_HOME P11ENROLL_CONF
softhsm2-util --init-token --free --label p11e-full --pin "$PIN" \
    --so-pin 12345678 >/dev/null 2>&1 &&
softhsm2-util --init-token --free --label p11e-gone --pin "$PIN" \
    --so-pin 12345678 >/dev/null 2>&1 || tap_bail "cannot create tokens"
chown -R "$U:$U" "$SOFTHSM_DIR"
chmod 0755 "$SOFTHSM_DIR"
p11kit_env_setup || tap_bail "cannot make the p11-kit home"
p11kit_env_add_module p11fault "$module" || tap_bail "cannot register p11fault"
P11FAULT_CONF=$P11KIT_HOME/p11fault.conf
export P11FAULT_CONF
# faults LINE...: the agent's faults from now on (renamed over: atomic)
faults()
{
	{
		printf 'module = %s\nlog = %s\n' "$SOFTHSM_MODULE" "$P11KIT_HOME/calls.log"
		printf '%s\n' "$@"
	} >"$P11FAULT_CONF.tmp" &&
	chown "$U:$U" "$P11FAULT_CONF.tmp" &&
	mv "$P11FAULT_CONF.tmp" "$P11FAULT_CONF"
}
agent_stop65534()
{
	p=$(p11kit_as_user "$P11ENROLL" --no-autostart --json status 2>/dev/null |
	    sed -n 's/^ *"pid": \([0-9]*\),*$/\1/p')
	[ -n "$p" ] || return 0
	kill "$p" 2>/dev/null
	i=0
	while kill -0 "$p" 2>/dev/null && [ $i -lt 100 ]; do
		sleep 0.05
		i=$((i + 1))
	done
}
tap_at_exit agent_stop65534
CMD_PREFIX=p11kit_as_user
# enroll65534 USER TOKEN [--resume CRED]
enroll65534()
{
	e_u=$1
	e_t=$2
	shift 2
	if [ $# -gt 0 ]; then
		set -- enroll "$@" --secrets-stdin
	else
		set -- enroll --invitation "$T/$e_u.inv" \
		    --token "pkcs11:token=$e_t" --secrets-stdin
	fi
	printf '%s\n%s\n%s\n' "$PIN" "$PW" "$(en_otp "$e_u" ${E_OTP_LATER:+30})" |
	    p11kit_as_user "$P11ENROLL" "$@"
}

# fault_case USER TOKEN WHAT FAULT...: the write fails with FAULT, the
# certificate waits in the journal, the resume without the fault writes it
fault_case()
{
	f_u=$1
	f_t=$2
	f_what=$3
	shift 3
	en_user "$f_u" || tap_bail "user add failed"
	faults "$@"
	enroll65534 "$f_u" "$f_t" >"$T/out" 2>&1
	rc=$?
	cat "$T/out" >&2
	f_s=$(en_ra_serial "$f_u")
	tap_check "$f_what: the enrollment fails with a clear message" sh -c \
	    "test $rc != 0 && grep -Eiq '$F_MESSAGE' '$T/out'"
	# an absent token: the agent waits for it (WAITING_TOKEN, step ISSUED)
	f_st=$(field "$f_u" state)/$(field "$f_u" step)
	tap_check "$f_what: the issued certificate waits in the journal (ISSUED, $f_s)" \
	    sh -c "test '$f_st' = ISSUED/ -o '$f_st' = WAITING_TOKEN/ISSUED && test -n '$f_s' && test '$(field "$f_u" serial)' = '$f_s'"
}
fault_resume()
{
	f_u=$1
	f_t=$2
	f_what=$3
	f_c=$(cred "$f_u")
	E_OTP_LATER=1 enroll65534 "$f_u" "$f_t" --resume "$f_c" >"$T/out" 2>&1
	rc=$?
	cat "$T/out" >&2
	tap_check "$f_what: enroll --resume writes it, without a second issuance" \
	    sh -c "test $rc = 0 && grep -q 'serial   $f_s' '$T/out' && test '$(en_ra_serial "$f_u")' = '$f_s'"
	tap_check "$f_what: exactly one key pair and one certificate on the token" \
	    sh -c "test $(en_count "pkcs11:token=$f_t" private-key) = 1 && test $(en_count "pkcs11:token=$f_t" certificate) = 1"
}

F_MESSAGE='full|no room|memory|space'
fault_case F0001 p11e-full "F12 full token" \
    "fail = C_CreateObject 1+ CKR_DEVICE_MEMORY"
faults
fault_resume F0001 p11e-full "F12 full token"

F_MESSAGE='removed|absent|insert|not present'
fault_case F0002 p11e-gone "F11 token removed" \
    "fail = C_CreateObject 1+ CKR_DEVICE_REMOVED"
# still absent on the first resume: a clear error, nothing issued again
faults "token-absent = yes"
c2=$(cred F0002)
E_OTP_LATER=1 enroll65534 F0002 p11e-gone --resume "$c2" >"$T/out" 2>&1
rc=$?
cat "$T/out" >&2
tap_check "F11 token still absent: resume fails, names the token it waits for" sh -c \
    "test $rc != 0 && grep -q 'no token matches the URI: insert the token .p11e-gone. .*token=p11e-gone. Tokens present: none' '$T/out' && test '$(field F0002 state)/$(field F0002 step)' = WAITING_TOKEN/ISSUED"
faults
fault_resume F0002 p11e-gone "F11 token removed"
tap_check "the RA issued one certificate per user, none twice" test \
    "$(sqlite3 "$D/ra.db" "SELECT count(*) FROM certificates")" = 4

# --- a reissue (a new window, opened in the RA's database) whose old pair
# cannot be removed (C_DestroyObject fails): the new certificate is
# installed all the same, the old objects stay, the log says what to do
en_user G0001 || tap_bail "user add failed"
enroll65534 G0001 p11e-full >"$T/out" 2>&1 ||
    { cat "$T/out" >&2; tap_bail "G0001's first enrollment failed"; }
g1=$(cred G0001)
sqlite3 "$D/ra.db" "INSERT INTO windows (user, opened, closes, reason, opened_by) SELECT id, strftime('%s', 'now'), strftime('%s', 'now') + 3600, 'lost', 'test' FROM users WHERE user_id = 'G0001'"
faults "fail = C_DestroyObject 1+ CKR_DEVICE_ERROR"
E_OTP_LATER=1 enroll65534 G0001 p11e-full >"$T/out" 2>&1
rc=$?
faults
cat "$T/out" >&2
g2=$(cred G0001)
tap_check "a reissue whose old pair cannot be removed: the new one is installed" \
    sh -c "test $rc = 0 && test -n '$g2' && test '$g2' != '$g1' &&
	test '$(field G0001 state)' = INSTALLED"
tap_check "... the old key and certificate stay, and the log says what removes them" \
    sh -c "test $(en_count pkcs11:token=p11e-full certificate) = 3 &&
	grep -q \"$g1: its key and certificate (id [0-9a-f]*) could not be removed from the token: 'p11enroll token delete' removes them\" '$XDG_RUNTIME_DIR/p11enroll/agent.log'"

tap_done
