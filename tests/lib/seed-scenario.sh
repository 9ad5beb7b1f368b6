#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# The bank manual's scenario (利用者の電子証明書を再発行する) end to end, on
# throwaway SoftHSM2 tokens and a local p11enroll-ra; run by
# `./quickstart demo` and by tests/integration/seed-scenario.sh, so the
# demonstration and its test are one script.
#
#   sh tests/lib/seed-scenario.sh BUILD_DIR WORK_DIR
#
# BUILD_DIR holds the built programs (cli/p11enroll, agent/p11enrolld,
# server/p11enroll-ra); WORK_DIR (empty, made by the caller, removed by
# it) receives everything: the RA directory, two tokens (the
# administrator's and the user's), two agent environments (the
# administrator's PC and the user's), nginx.  Each step prints a short
# log; the script stops at the first step that fails (exit 1) and, at
# its end whatever happened, stops everything it started (RA, agents,
# nginx).  For the test it leaves WORK_DIR/results ("key value" lines:
# serials, HTTP codes, the pids it stopped) and the token listings and
# agent lists it printed, as JSON.
#
# The secrets are throwaway demonstration values: they go to the
# programs on standard input (or a FIFO), never in argv or the
# environment; the bank's one-time outputs (contract PINs, customer card,
# OTP secret, admin code) stay in shell variables.  A real contract's
# secrets are never handled like this.
set -u

B=$1
W=$2
CLI=$B/cli/p11enroll
RA=$B/server/p11enroll-ra
AGENT=$B/agent/p11enrolld
case $AGENT in
/*) ;;
*) AGENT=$(pwd)/$AGENT ;;
esac

# throwaway demonstration secrets
ADMIN_TPIN='Admin-Token-2468'
USER_TPIN='User-Token-1357'
SO_PIN='So-Pin-Demo-8642'
USER_PW='Demo-Passw0rd-S0001'
ADMIN_PW='Demo-Passw0rd-A0001'
# users' certificates live this long here, so that one expires
LIFETIME=12

step_n=0
ra_pid=
nginx_pid=
started=

# ---- output ----

heading()
{
	printf '\n== %s ==\n' "$*"
}

step()
{
	step_n=$((step_n + 1))
	printf '\n[%d] %s\n' "$step_n" "$*"
}

say()
{
	printf '    %s\n' "$*"
}

indent()
{
	sed 's/^/    /'
}

fail()
{
	printf '\n[%d] FAILED: %s\n' "$step_n" "$*" >&2
	exit 1
}

result()
{
	printf '%s %s\n' "$1" "$2" >>"$W/results"
}

# json KEY...: a member of the JSON document on stdin ("" when absent)
json()
{
	python3 -c '
import json, sys
v = json.load(sys.stdin)
for k in sys.argv[1:]:
    v = v[int(k)] if isinstance(v, list) else v.get(k, "")
print(v if not isinstance(v, (dict, list)) else json.dumps(v, ensure_ascii=False))' "$@"
}

# ---- processes ----

# wait_gone PID: up to 10 s
wait_gone()
{
	i=0
	while kill -0 "$1" 2>/dev/null && [ $i -lt 200 ]; do
		sleep 0.05
		i=$((i + 1))
	done
}

# agent_pid ENV: the pid of the agent of that environment, or ""
agent_pid()
{
	(as_env "$1" && "$CLI" --no-autostart --json status 2>/dev/null) |
	    sed -n 's/^ *"pid": \([0-9]*\),*$/\1/p'
}

cleanup()
{
	status=$?
	trap - EXIT INT TERM HUP
	for e in admin user; do
		p=$(agent_pid $e)
		if [ -n "$p" ]; then
			kill "$p" 2>/dev/null
			wait_gone "$p"
			result stopped-agent-$e "$p"
		fi
	done
	if [ -n "$nginx_pid" ]; then
		kill "$nginx_pid" 2>/dev/null
		wait_gone "$nginx_pid"
		kill -KILL -- "-$nginx_pid" 2>/dev/null
		result stopped-nginx "$nginx_pid"
	fi
	if [ -n "$ra_pid" ]; then
		kill "$ra_pid" 2>/dev/null
		wait_gone "$ra_pid"
		result stopped-ra "$ra_pid"
	fi
	[ -n "$started" ] && printf '\nStopped the RA, nginx and both agents.\n'
	exit $status
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

# as_env admin|user: the environment of that person's PC (a subshell's)
as_env()
{
	XDG_RUNTIME_DIR=$W/$1/run
	XDG_STATE_HOME=$W/$1/state
	HOME=$W/$1/home
	P11ENROLL_CONF=$W/$1/p11enroll.conf
	P11ENROLL_AGENT=$AGENT
	export XDG_RUNTIME_DIR XDG_STATE_HOME HOME P11ENROLL_CONF \
	    P11ENROLL_AGENT
}

# nginx as the relying party, as the browser tests run it (their
# helpers register what to stop with tap_at_exit: cleanup stops it here)
tap_at_exit()
{
	:
}
. "$(dirname "$0")/browser.sh"

# token_init LABEL PIN: a SoftHSM2 token; the PINs through a pty
# (softhsm2-util reads them from a terminal only), its echo discarded
token_init()
{
	printf '%s\n%s\n%s\n%s\n' "$SO_PIN" "$SO_PIN" "$2" "$2" |
	    script -qec "softhsm2-util --init-token --free --label $1" \
	    /dev/null >/dev/null 2>&1
	softhsm2-util --show-slots 2>/dev/null | grep -q "Label: *$1 *\$"
}

# objects ENV TOKEN PIN OUT: the token's objects as JSON into OUT
objects()
{
	printf '%s\n' "$3" | (as_env "$1" && "$CLI" --json --pin-stdin \
	    token objects --login "pkcs11:token=$2") >"$4" 2>"$4.err"
}

# leaf_cert JSON SERIAL: the id (hex) of the leaf certificate SERIAL
leaf_id()
{
	python3 -c '
import json, sys
for o in json.load(open(sys.argv[1]))["objects"]:
    if o["kind"] == "certificate" and not o.get("authority") and o["serial"].upper() == sys.argv[2].upper():
        print(o["id"])' "$1" "$2"
}

# ra_start: p11enroll-ra serve on $PORT
ra_start()
{
	"$RA" serve --listen "127.0.0.1:$PORT" >>"$W/ra.log" 2>&1 &
	ra_pid=$!
	i=0
	until curl -s --noproxy '*' --cacert "$D/server-ca.crt" -o /dev/null \
	    "$URL/.well-known/est/cacerts"; do
		i=$((i + 1))
		[ $i -lt 200 ] && kill -0 $ra_pid 2>/dev/null || return 1
		sleep 0.05
	done
}

ra_stop()
{
	kill "$ra_pid" 2>/dev/null
	wait_gone "$ra_pid"
	ra_pid=
}

# user_enroll N SECONDS: p11enroll enroll --invitation for S0001 onto
# demo-user, the OTP of now + SECONDS; its serial and key id into
# $serialN and $idN (and the results)
user_enroll()
{
	printf '%s\n%s\n%s\n' "$USER_TPIN" "$USER_PW" \
	    "$(printf '%s\n' "$otp_secret" |
		oathtool --totp -b -N "now + $2 sec" -)" |
	    (as_env user && "$CLI" enroll --invitation "$W/S0001.inv" \
	    --token pkcs11:token=demo-user --secrets-stdin) \
	    >"$W/enroll$1.out" 2>&1 || fail "enroll: $(cat "$W/enroll$1.out")"
	indent <"$W/enroll$1.out"
	ue_serial=$(sed -n 's/^  serial   //p; s/^  シリアル番号  //p' "$W/enroll$1.out")
	objects user demo-user "$USER_TPIN" "$W/user-token-$1.json" ||
	    fail "token objects: $(cat "$W/user-token-$1.json.err")"
	ue_id=$(leaf_id "$W/user-token-$1.json" "$ue_serial")
	[ -n "$ue_id" ] || fail "certificate $ue_serial is not on the token"
	result serial-$1 "$ue_serial"
	result id-$1 "$ue_id"
	eval "serial$1=\$ue_serial id$1=\$ue_id"
}

# nginx_login ID SERIAL: openssl s_client to nginx with the user token's
# key ID (libp11's engine) and certificate SERIAL (public: from the RA's
# database), the token PIN on a descriptor of its own (-pass fd:4); the
# HTTP status on stdout (000: no answer)
nginx_login()
{
	browser_ra_cert_pem "$D/ra.db" "$2" >"$W/login.pem"
	printf 'GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' |
	    browser_tls_client demo-user "$1" "$W/login.pem" "$USER_TPIN" \
	    "$D/server-ca.crt" >"$W/page.txt" 2>>"$W/s_client.err"
	code=$(sed -n '1s/^HTTP\/1\.[01] \([0-9][0-9][0-9]\).*/\1/p' "$W/page.txt")
	echo "${code:-000}"
}

# ---- the scenario ----

for c in softhsm2-util script oathtool python3 curl openssl sqlite3; do
	command -v $c >/dev/null 2>&1 || fail "$c is not installed"
done
NGINX=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || fail "nginx is not installed (Debian package nginx-light)"
for p in "$CLI" "$RA" "$AGENT"; do
	[ -x "$p" ] || fail "$p is not built"
done

: >"$W/results"
chmod 0755 "$W"
for e in admin user; do
	mkdir -p "$W/$e/run" "$W/$e/state" "$W/$e/home"
	chmod 0700 "$W/$e/run"
	: >"$W/$e/p11enroll.conf"
done
mkdir -p "$W/tokens"
printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\n' \
    "$W" >"$W/softhsm2.conf"
SOFTHSM2_CONF=$W/softhsm2.conf
TPM2_PKCS11_BACKEND=none
D=$W/ra
P11ENROLL_RA_DIR=$D
export SOFTHSM2_CONF TPM2_PKCS11_BACKEND P11ENROLL_RA_DIR
started=1

heading "銀行の準備 (the bank)"
step "p11enroll-ra init, the contract, the administrator A0001, the user S0001 and its one-time password token"
"$RA" init "$D" >"$W/init.out" 2>&1 || fail "p11enroll-ra init: $(cat "$W/init.out")"
PORT=$(browser_free_port)
URL=https://127.0.0.1:$PORT
sed -i "s|^url = .*|url = $URL|" "$D/ra.conf"
mkdir -p "$D/ra.conf.d"
# the demonstration's policy: users' certificates live $LIFETIME s and
# cannot be renewed (renew-before 0), so one expires as in the manual
cat >"$D/ra.conf.d/demo.conf" <<EOF
[policy]
user-validity = ${LIFETIME}s
backdate = 0
renew-before = 0
EOF
say "policy for the demonstration (ra.conf.d/demo.conf): user certificates live $LIFETIME s and cannot be renewed"
contract=$("$RA" --json contract add --name "しんきん商事" 2>"$W/err") ||
    fail "contract add: $(cat "$W/err")"
C=$(printf '%s' "$contract" | json contract_id)
say "contract (契約者ID) $C: contract PIN, confirmation PIN and the customer card (お客様カード) handed to the administrator"
printf '%s\n' "$ADMIN_PW" | "$RA" user add "$C" A0001 --name "管理者 花子" \
    --admin --password-stdin >/dev/null 2>"$W/err" || fail "user add A0001: $(cat "$W/err")"
acode=$("$RA" --json admin-code "$C" A0001 2>"$W/err" | json code) && [ -n "$acode" ] ||
    fail "admin-code: $(cat "$W/err")"
say "administrator A0001 with a one-time code for its first certificate"
printf '%s\n' "$USER_PW" | "$RA" user add "$C" S0001 --name "山田太郎" \
    --password-stdin --invitation "$W/S0001.inv" >/dev/null 2>"$W/err" ||
    fail "user add S0001: $(cat "$W/err")"
chmod 0644 "$W/S0001.inv"
otp_secret=$("$RA" --json otp assign "$C" S0001 2>"$W/err" | json otpauth_uri |
    sed -n 's/.*[?&]secret=\([A-Z2-7]*\).*/\1/p')
[ -n "$otp_secret" ] || fail "otp assign: $(cat "$W/err")"
say "user S0001 (山田太郎) with an initial password, an invitation and a TOTP token"
ra_start || fail "p11enroll-ra serve did not start: $(cat "$W/ra.log")"
say "p11enroll-ra serve on $URL"
SPIN=$(openssl x509 -in "$D/tls.crt" -pubkey -noout |
    openssl pkey -pubin -outform DER | openssl dgst -sha256 -binary | base64)
printf '[service ra]\nurl = %s\nserver-pin = sha256//%s\n' "$URL" "$SPIN" \
    >"$W/admin/p11enroll.conf"
token_init demo-admin "$ADMIN_TPIN" || fail "cannot make the administrator's SoftHSM2 token"
token_init demo-user "$USER_TPIN" || fail "cannot make the user's SoftHSM2 token"
say "two throwaway SoftHSM2 tokens: demo-admin (the administrator's) and demo-user (the user's)"

heading "管理者の操作 (the administrator)"
step "p11enroll admin enroll: the administrator's key is made on its token, the certificate comes with the one-time code"
printf '%s\n%s\n' "$ADMIN_TPIN" "$acode" | (as_env admin && "$CLI" admin enroll \
    --service ra --token pkcs11:token=demo-admin --contract-id "$C" \
    --user-id A0001 --secrets-stdin) >"$W/aenroll.out" 2>&1 ||
    fail "admin enroll: $(cat "$W/aenroll.out")"
indent <"$W/aenroll.out"
aserial=$(sed -n 's/^  serial   //p; s/^  シリアル番号  //p' "$W/aenroll.out")
objects admin demo-admin "$ADMIN_TPIN" "$W/admin-token.json" ||
    fail "token objects: $(cat "$W/admin-token.json.err")"
[ -n "$(leaf_id "$W/admin-token.json" "$aserial")" ] ||
    fail "the administrator's certificate $aserial is not on the token"
say "on the token demo-admin: the administrator's certificate $aserial and its key"
result admin-serial "$aserial"

heading "利用者の操作 (the user)"
step "p11enroll enroll --invitation: the user's first certificate (key on the token first; PIN, password and OTP on stdin)"
user_enroll 1 0

step "the certificate expires ($LIFETIME s here, a year in the manual): p11enroll list, and nginx on 127.0.0.1 (ssl_verify_client on, the RA's issuing CA) refuses it"
i=0
while :; do
	(as_env user && "$CLI" --json list) >"$W/list-expired.json" 2>&1
	state=$(python3 -c '
import json, sys
for c in json.load(open(sys.argv[1]))["credentials"]:
    if c["serial"].upper() == sys.argv[2].upper():
        print(c["state"])' "$W/list-expired.json" "$serial1" 2>/dev/null)
	[ "$state" = EXPIRED ] && break
	i=$((i + 1))
	[ $i -lt $((LIFETIME * 2 + 60)) ] || fail "still $state after $((LIFETIME + 30)) s"
	sleep 0.5
done
(as_env user && "$CLI" list) 2>&1 | indent
say "the agent cannot renew an expired certificate: the administrator must reissue it (再発行)"
result state-1 "$state"
browser_nginx_start "$W/nginx" "$D/tls.crt" "$D/tls.key" "$D/ca.crt" ||
    fail "nginx did not start: $(cat "$W/nginx/stderr" "$W/nginx/error.log")"
nginx_pid=$NGINX_PID
code1=$(nginx_login "$id1" "$serial1")
say "old certificate $serial1: HTTP $code1 — $(sed -n 's/.*verify=FAILED:\(.*\) serial=.*/\1/p' "$W/nginx/access.log" | tail -n 1)"
result nginx-old "$code1"
[ "$code1" = 400 ] || fail "nginx did not refuse the expired certificate (HTTP $code1)"

heading "銀行 (the bank)"
step "the demonstration's short lifetime ends: ra.conf.d/demo.conf removed, p11enroll-ra serve restarted"
rm -f "$D/ra.conf.d/demo.conf"
ra_stop
ra_start || fail "p11enroll-ra serve did not start again: $(cat "$W/ra.log")"
say "users' certificates live a year again"

heading "管理者の操作 (the administrator)"
step "p11enroll admin login: the certificate on the token, the contract PIN (ご契約先暗証番号), then the customer card"
rm -f "$W/login.fifo"
mkfifo -m 0600 "$W/login.fifo"
(as_env admin && exec "$CLI" --pin-stdin admin login --service ra \
    --token pkcs11:token=demo-admin) <"$W/login.fifo" >"$W/login.out" 2>&1 &
login_pid=$!
exec 3>"$W/login.fifo"
printf '%s\n%s\n' "$ADMIN_TPIN" "$(printf '%s' "$contract" | json contract_pin)" >&3
i=0
while ! grep -q 'customer card\|お客様カード' "$W/login.out" && kill -0 $login_pid 2>/dev/null &&
    [ $i -lt 1200 ]; do
	sleep 0.05
	i=$((i + 1))
done
# the two kana the server chose, looked up on the card as a person would
answers=$(printf '%s' "$contract" | python3 -c '
import json, sys
card = json.load(sys.stdin)["card"]
line = [l for l in open(sys.argv[1]).read().splitlines() if "card" in l or "カード" in l][0]
cells = sorted((line.find(" %s " % k), k) for k in card if line.find(" %s " % k) >= 0)
print("\n".join(str(card[k]) for _, k in cells[:2]))' "$W/login.out" 2>/dev/null)
[ -n "$answers" ] && printf '%s\n' "$answers" >&3
exec 3>&-
wait $login_pid
rc=$?
rm -f "$W/login.fifo"
indent <"$W/login.out"
[ $rc = 0 ] || fail "admin login (exit $rc)"
say "(the demo read the two numbers off the customer card that contract add printed)"
result login ok

step "p11enroll admin users, then admin reissue S0001 with the confirmation PIN (ご契約先確認暗証番号)"
printf '%s\n' "$ADMIN_TPIN" | (as_env admin && "$CLI" --pin-stdin admin users) 2>&1 | indent
printf '%s\n%s\n' "$ADMIN_TPIN" "$(printf '%s' "$contract" | json confirmation_pin)" |
    (as_env admin && "$CLI" --pin-stdin admin reissue S0001) >"$W/reissue.out" 2>&1 ||
    fail "admin reissue: $(cat "$W/reissue.out")"
indent <"$W/reissue.out"
window=$(sqlite3 "$D/ra.db" "SELECT w.reason || ' ' || w.state || ' ' || w.opened_by FROM windows w JOIN users u ON u.id = w.user WHERE u.user_id = 'S0001' AND w.state = 'open'")
[ -n "$window" ] || fail "no acquisition window open for S0001"
result window "$window"
printf '%s\n' "$ADMIN_TPIN" | (as_env admin && "$CLI" --pin-stdin admin logout) 2>&1 | indent

heading "利用者の操作 (the user)"
step "p11enroll enroll --invitation within the acquisition window (取得可能期間): the new certificate"
# the code of the next step: the first one may still be the current
user_enroll 2 30
(as_env user && "$CLI" list) 2>&1 | indent
# the expired predecessor is retired: nothing asks for a reissue any more
(as_env user && "$CLI" status >/dev/null 2>&1)
result status-after $?
result credentials-after "$( (as_env user && "$CLI" --json list) 2>/dev/null |
    python3 -c 'import json, sys; print(len(json.load(sys.stdin)["credentials"]))')"

step "nginx on 127.0.0.1: the new certificate from the token logs in; the expired one's key and certificate left the token"
code2=$(nginx_login "$id2" "$serial2")
say "new certificate $serial2: HTTP $code2 — $(sed -n 's/.*<h1 id="r">\([^<]*\)<.*<p id="serial">\([^<]*\)<.*/\1, \2/p' "$W/page.txt")"
result nginx-new "$code2"
[ "$code2" = 200 ] || fail "nginx did not accept the new certificate (HTTP $code2)"
old_left=$(python3 -c '
import json, sys
print(sum(1 for o in json.load(open(sys.argv[1]))["objects"]
          if o.get("id", "").lower() == sys.argv[2].lower()))' \
    "$W/user-token-2.json" "$id1")
say "objects of the expired certificate (id $id1) still on the token: $old_left"
result old-objects-after "$old_left"
[ "$old_left" = 0 ] || fail "the expired certificate's objects are still on the token"
printf '\nThe scenario ran to its end: the reissued certificate on the token logs in; the expired one was refused and has left the token.\n'
