#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# p11enroll admin against p11enroll-ra serve, the administrator's key and
# certificate on a SoftHSM2 token (key made on the token, certificate
# from the one-time code): login with the token PIN, the contract PIN and
# the two card numbers asked for the kana the server chose; users; keep,
# reissue lost (the old certificate revoked, the invitation printed), a
# wrong confirmation PIN (nothing done); otp (a new TOTP secret, its URI
# and QR code; unknown users and another contract's refused); audit;
# logout; the admin token never on disk.  The administrator's
# certificate comes from p11enroll admin enroll (the one-time code).

. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/softhsm.sh"
. "$top_srcdir/tests/lib/agent.sh"
. "$top_srcdir/tests/lib/ra.sh"
. "$top_srcdir/tests/lib/ra-serve.sh"

for c in softhsm2-util oathtool python3 sqlite3 openssl curl; do
	command -v $c >/dev/null 2>&1 ||
	    tap_skip_all "$c not installed (Debian packages softhsm2, oathtool, python3, sqlite3, openssl, curl)"
done

tap_plan 47
tap_tmpdir T
agent_env "$T"
TPIN='Pin-Canary-a9d3'
softhsm_setup p11e-admin "$TPIN" >&2 || tap_bail "cannot create a SoftHSM2 token"
TOK=pkcs11:token=p11e-admin

rs_init
"$RA" contract add --name "しんきん商事" --json >"$T/contract.json" ||
    tap_bail "contract add"
C=$(ra_json_get contract_id <"$T/contract.json")
PIN=$(ra_json_get contract_pin <"$T/contract.json")
CPIN=$(ra_json_get confirmation_pin <"$T/contract.json")
rs_user S0001
rs_user A0001 --admin
rs_start || tap_bail "the server did not start: $(cat "$T/serve.log")"
SPIN=$(openssl x509 -in "$D/tls.crt" -pubkey -noout |
    openssl pkey -pubin -outform DER | openssl dgst -sha256 -binary | base64)
svc_conf()
{
	cat >"$P11ENROLL_CONF" <<EOF
[service ra]
url = $URL
server-pin = sha256//$SPIN
EOF
}
svc_conf

# the user's certificate (openssl key), to be revoked by the reissue
rs_session S0001
rs_csr S0001
rs_enroll "$T/S0001.csr" -H "Authorization: Bearer $TOKEN"
rs_cert "$T/S0001.pem"
serial1=$(openssl x509 -in "$T/S0001.pem" -noout -serial | cut -d= -f2)

# p11enroll admin enroll: the key on the token, the certificate with the
# bank's one-time code (EST simpleenroll with Basic)
"$RA" admin-code "$C" A0001 --json >"$T/code.json" 2>/dev/null
ACODE=$(ra_json_get code <"$T/code.json")
printf '%s\n%s\n' "$TPIN" "$ACODE" | "$P11ENROLL" admin enroll --service ra \
    --token "$TOK" --contract-id "$C" --user-id A0001 --secrets-stdin \
    >"$T/aenroll.out" 2>"$T/aenroll.err"
tap_check "admin enroll with the one-time code: exit 0" [ $? = 0 ]
aserial=$(sed -n 's/^  serial   //p' "$T/aenroll.out")
tap_check "... an administrator's certificate, journaled and on the token" sh -c \
    "[ \"\$(sqlite3 '$D/ra.db' \"SELECT c.role, c.status, u.user_id FROM certificates c JOIN users u ON u.id = c.user WHERE c.serial = '$aserial'\")\" = 'admin|valid|A0001' ] && grep -q '^enrolled: ' '$T/aenroll.out'"
tap_check "... the code is used" \
    [ "$(sqlite3 "$D/ra.db" "SELECT count(*) FROM enroll_codes WHERE kind = 'admin-code' AND used IS NOT NULL")" = 1 ]
"$P11ENROLL" --json list >"$T/list.json" 2>&1
tap_check "... tracked by the agent as INSTALLED (renewable like any credential)" \
    python3 -c "
import json
c = [x for x in json.load(open('$T/list.json'))['credentials'] if x['serial'] == '$aserial']
assert len(c) == 1 and c[0]['state'] == 'INSTALLED', c"

card()
{
	python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["card"][sys.argv[2]])' \
	    "$T/contract.json" "$1"
}

# login ANSWER_DELTA: p11enroll admin login on a FIFO: the token PIN and
# the contract PIN first, then, once the server has chosen the cells,
# their numbers (+ ANSWER_DELTA to answer wrong)
login()
{
	rm -f "$T/in"
	mkfifo "$T/in"
	"$P11ENROLL" --pin-stdin ${LOGIN_JSON:+--json} admin login --service ra \
	    --token "$TOK" <"$T/in" >"$T/login.out" 2>"$T/login.err" &
	l_pid=$!
	exec 3>"$T/in"
	# a login that ends early must not take the test down with SIGPIPE
	trap '' PIPE
	printf '%s\n%s\n' "$TPIN" "$PIN" >&3
	i=0
	while [ -z "$(sq "SELECT grid_challenge FROM contracts WHERE contract_id = '$C'")" ] &&
	    [ $i -lt 200 ]; do
		sleep 0.05
		i=$((i + 1))
	done
	cells=$(sq "SELECT grid_challenge FROM contracts WHERE contract_id = '$C'")
	for k in 1 2; do
		idx=$(echo "$cells" | cut -d, -f$k)
		label=$(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["card_rows"]; print([l for row in r for l in row][int(sys.argv[2])])' \
		    "$T/contract.json" "$idx")
		v=$(card "$label")
		# "08" is no octal number: the digits without the leading 0
		[ "$k" = 1 ] && v=$(printf '%02d' $(((${v#0} + ${1:-0}) % 100)))
		printf '%s\n' "$v" >&3
	done
	exec 3>&-
	wait $l_pid
	l_rc=$?
	return $l_rc
}

sq()
{
	sqlite3 "$D/ra.db" "$1"
}

# ---- login ----
"$P11ENROLL" admin status >/dev/null 2>&1
files_before=$(find "$XDG_STATE_HOME" "$XDG_RUNTIME_DIR" "$HOME" -type f ! -name '*.log' | sort)
login 1
tap_check "a wrong card number: login fails" [ "$l_rc" != 0 ]
tap_check "... saying so" grep -q "customer card numbers are wrong" "$T/login.err"
tap_check "... counted on the server" \
    [ "$(sq "SELECT grid_failures FROM users WHERE user_id = 'A0001'")" = 1 ]
"$P11ENROLL" admin status >"$T/status.out" 2>&1
tap_check "admin status: still waiting for the card numbers" \
    grep -q "Waiting for the customer card answer" "$T/status.out"
login 0
tap_check "admin login with the token PIN, contract PIN and card numbers: exit 0" \
    [ "$l_rc" = 0 ]
tap_check "... it showed both kana to look up (Japanese and English)" sh -c \
    "grep -q 'お客様カードの .* と .* の数字を入力してください' '$T/login.out' && grep -q 'Enter the numbers of' '$T/login.out'"
tap_check "... and the idle timeout" grep -q "ends after 900 idle seconds" "$T/login.out"
"$P11ENROLL" admin status >"$T/status.out" 2>&1
tap_check "admin status: logged in" grep -q "Logged in to ra" "$T/status.out"

# ---- users ----
printf '%s\n' "$TPIN" | "$P11ENROLL" --pin-stdin admin users >"$T/users.out" 2>&1
tap_check "admin users: a table with the user's certificate" sh -c \
    "grep -q '^USER .*ISSUE.*STATUS.*WINDOW' '$T/users.out' && grep -q '^S0001 .* 1 valid .* $serial1 ' '$T/users.out'"
printf '%s\n' "$TPIN" | "$P11ENROLL" --pin-stdin --json admin users >"$T/users.json" 2>&1
tap_check "admin users --json: the server's list" python3 -c "
import json
b = json.load(open('$T/users.json'))
u = {x['user_id']: x for x in b['users']}
assert b['contract_id'] == '$C' and u['S0001']['certificate']['serial'] == '$serial1'"

# ---- a wrong confirmation PIN: nothing done ----
before=$(sq "SELECT serial, status FROM certificates; SELECT id, state FROM windows")
printf '%s\n%s\n' "$TPIN" 000000000 | "$P11ENROLL" --pin-stdin admin reissue \
    S0001 --reason lost >"$T/r.out" 2>"$T/r.err"
tap_check "reissue with a wrong confirmation PIN fails" [ $? != 0 ]
tap_check "... says what would have happened, then that the PIN is wrong" sh -c \
    "grep -q 'Reissue (再発行) for S0001' '$T/r.out' && grep -q 'confirmation PIN .* is wrong: nothing was done' '$T/r.err'"
tap_check "... nothing changed" \
    [ "$(sq "SELECT serial, status FROM certificates; SELECT id, state FROM windows")" = "$before" ]

# ---- reissue expired, keep, then reissue lost ----
printf '%s\n%s\n' "$TPIN" "$CPIN" | "$P11ENROLL" --pin-stdin admin reissue \
    S0001 >"$T/r.out" 2>&1
tap_check "admin reissue (expired): a window, the certificate kept" sh -c \
    "grep -q 'Acquisition window open until' '$T/r.out' && ! grep -q Revoked '$T/r.out' && [ \"\$(sqlite3 '$D/ra.db' \"SELECT status FROM certificates WHERE serial = '$serial1'\")\" = valid ]"
printf '%s\n%s\n' "$TPIN" "$CPIN" | "$P11ENROLL" --pin-stdin admin keep \
    S0001 >"$T/k.out" 2>&1
tap_check "admin keep: the user's window closes" sh -c \
    "grep -q 'window of S0001 is closed' '$T/k.out' && [ \"\$(sqlite3 '$D/ra.db' \"SELECT count(*) FROM windows w JOIN users u ON u.id = w.user WHERE u.user_id = 'S0001' AND w.state = 'open'\")\" = 0 ]"
printf '%s\n%s\n' "$TPIN" "$CPIN" | "$P11ENROLL" --pin-stdin admin reissue \
    S0001 --reason lost >"$T/r.out" 2>&1
tap_check "admin reissue --reason lost: exit 0" [ $? = 0 ]
tap_check "... the old certificate revoked, the invitation printed" sh -c \
    "grep -q 'Revoked certificate $serial1' '$T/r.out' && grep -q '契約者ID (contract ID):  $C' '$T/r.out' && grep -q '利用者ID (user ID):      S0001' '$T/r.out' && grep -q 'server pin: *sha256//' '$T/r.out'"
tap_check "... on the server: revoked, a lost window open" sh -c \
    "[ \"\$(sqlite3 '$D/ra.db' \"SELECT status FROM certificates WHERE serial = '$serial1'\")\" = revoked ] && [ \"\$(sqlite3 '$D/ra.db' \"SELECT reason FROM windows w JOIN users u ON u.id = w.user WHERE u.user_id = 'S0001' AND w.state = 'open'\")\" = lost ]"

# ---- the user enrolls again within the window ----
rs_session S0001 "$(rs_otp S0001 30)"
rs_csr S0001b
rs_enroll "$T/S0001b.csr" -H "Authorization: Bearer $TOKEN"
tap_check "the user's new certificate within the reissue window: issue 2" sh -c \
    "[ '$code' = 200 ] && [ \"\$(sqlite3 '$D/ra.db' \"SELECT max(issue_no) FROM certificates c JOIN users u ON u.id = c.user WHERE u.user_id = 'S0001' AND c.status = 'valid'\")\" = 2 ]"

# ---- unlock ----
sq "UPDATE users SET failures = 5, locked = 1 WHERE user_id = 'S0001'"
printf '%s\n%s\n' "$TPIN" "$CPIN" | "$P11ENROLL" --pin-stdin admin unlock \
    S0001 >"$T/un.out" 2>&1
tap_check "admin unlock: says what it does, clears the lock" sh -c \
    "grep -q 'Unlock (ロック解除) S0001' '$T/un.out' && grep -q 'S0001 unlocked (it was locked, 5 failures' '$T/un.out' && [ \"\$(sqlite3 '$D/ra.db' \"SELECT failures, locked FROM users WHERE user_id = 'S0001'\")\" = '0|0' ]"

# ---- OTP-token assignment (ワンタイムパスワード登録) ----
rs_user S0006 # with an initial window and a TOTP secret
"$RA" contract add --name "他社" --json >"$T/contract2.json" ||
    tap_bail "contract add 2"
printf '%s\n' "$PW" | "$RA" user add "$(ra_json_get contract_id <"$T/contract2.json")" \
    B0001 --name B0001 --password-stdin >/dev/null 2>&1 || tap_bail "user add B0001"
otp_rows()
{
	sq "SELECT user, serial, hex(secret), digits, step, last_used_step, created FROM otp_tokens"
}
before=$(otp_rows)
printf '%s\n%s\n' "$TPIN" 000000000 | "$P11ENROLL" --pin-stdin admin otp \
    S0006 >"$T/otp.out" 2>"$T/otp.err"
tap_check "admin otp with a wrong confirmation PIN fails" [ $? != 0 ]
tap_check "... says what would have happened, then that the PIN is wrong" sh -c \
    "grep -q 'One-time password registration (ワンタイムパスワード登録) for S0006: a new TOTP secret replaces' '$T/otp.out' && grep -q 'confirmation PIN .* is wrong: nothing was done' '$T/otp.err'"
tap_check "... counted, the tokens unchanged" sh -c \
    "[ \"\$(sqlite3 '$D/ra.db' \"SELECT failures FROM users WHERE user_id = 'A0001'\")\" = 1 ] && [ \"\$(sqlite3 '$D/ra.db' 'SELECT user, serial, hex(secret), digits, step, last_used_step, created FROM otp_tokens')\" = '$before' ]"
rs_otp S0006 30 | "$RA" otp check --stdin "$C" S0006 >"$T/check.out" 2>&1
tap_check "... the user's old secret still works" [ $? = 0 ]
before=$(otp_rows) # the check used a step
for u in S9999 B0001; do
	printf '%s\n%s\n' "$TPIN" "$CPIN" | "$P11ENROLL" --pin-stdin admin otp \
	    $u >"$T/otp.out" 2>"$T/otp.err"
	rc=$?
	tap_check "admin otp $u (unknown here$([ $u = B0001 ] && echo ', a user of another contract')): refused, saying so" \
	    sh -c "[ $rc != 0 ] && grep -q 'no such user in the contract' '$T/otp.err'"
	tap_check "... the tokens unchanged" [ "$(otp_rows)" = "$before" ]
done
cp "$T/S0006.secret" "$T/S0006.old"
printf '%s\n%s\n' "$TPIN" "$CPIN" | "$P11ENROLL" --pin-stdin admin otp \
    S0006 >"$T/otp.out" 2>"$T/otp.err"
tap_check "admin otp: exit 0" [ $? = 0 ]
tap_check "... the otpauth:// URI and its QR code, once" sh -c \
    "grep -q '^One-time password token soft-[0-9a-f]* assigned to S0006' '$T/otp.out' && grep -q '^  otpauth://totp/p11enroll:$C%20S0006?secret=[A-Z2-7]*&' '$T/otp.out' && [ \$(grep -c '█' '$T/otp.out') -gt 10 ]"
sed -n 's/.*[?&]secret=\([A-Z2-7]*\).*/\1/p' "$T/otp.out" >"$T/S0006.secret"
tap_check "... the secret in neither the agent's files nor the server's log" sh -c \
    "! grep -rqF '$(cat "$T/S0006.secret")' '$XDG_RUNTIME_DIR' '$XDG_STATE_HOME' '$T/serve.log'"
rs_session S0006
tap_check "... a code of the new secret (oathtool) logs the user in" sh -c \
    "[ '$code' = 200 ] && [ -n '$TOKEN' ]"
oathtool --totp -b -N "now + 30 sec" "$(cat "$T/S0006.old")" |
    "$RA" otp check --stdin "$C" S0006 >/dev/null 2>&1
tap_check "... the old secret no longer works" [ $? != 0 ]
printf '%s\n%s\n' "$TPIN" "$CPIN" | "$P11ENROLL" --pin-stdin --json admin otp \
    S0006 >"$T/otp.json" 2>"$T/otp.err"
tap_check "admin otp --json: the server's answer" python3 -c "
import json
b = json.load(open('$T/otp.json'))
assert b['user_id'] == 'S0006' and b['otpauth_uri'].startswith('otpauth://totp/') and b['digits'] == 6, b"

# ---- user registration ----
printf '%s\n%s\n%s\n' "$TPIN" 'Initial-Passw0rd-77' "$CPIN" |
    "$P11ENROLL" --pin-stdin admin user-add S0005 --name "佐藤一郎" \
    >"$T/ua.out" 2>&1
tap_check "admin user-add: the user and its invitation" sh -c \
    "grep -q 'User S0005 added' '$T/ua.out' && grep -q '利用者ID (user ID):      S0005' '$T/ua.out' && [ \"\$(sqlite3 '$D/ra.db' \"SELECT name, role FROM users WHERE user_id = 'S0005'\")\" = '佐藤一郎|user' ]"

# ---- audit, logout ----
printf '%s\n' "$TPIN" | "$P11ENROLL" --pin-stdin admin audit >"$T/a.out" 2>&1
tap_check "admin audit: the reissue is there" grep -q "admin-certificate .*$C/S0001 .*ok .*reissue reason=lost" "$T/a.out"
files_after=$(find "$XDG_STATE_HOME" "$XDG_RUNTIME_DIR" "$HOME" -type f ! -name '*.log' | sort)
tap_check "the agent wrote no file for the admin session (the token is in memory only)" \
    [ "$files_after" = "$files_before" ]
printf '%s\n' "$TPIN" | "$P11ENROLL" --pin-stdin admin logout >"$T/o.out" 2>&1
tap_check "admin logout" grep -q "Logged out" "$T/o.out"
tap_check "... the token ended on the server" \
    [ "$(sq "SELECT count(*) FROM admin_sessions WHERE kind = 'token' AND ended IS NULL")" = 0 ]
printf '%s\n' "$TPIN" | "$P11ENROLL" --pin-stdin admin users >"$T/u2.out" 2>&1
tap_check "admin users after logout: refused, 'admin login' suggested" sh -c \
    "! printf '%s\n' '$TPIN' | '$P11ENROLL' --pin-stdin admin users >/dev/null 2>&1 && grep -q 'p11enroll admin login' '$T/u2.out'"

# ---- the agent forgets an idle admin session by itself ----
rs_stop
printf '[policy]\nadmin-idle-timeout = 2s\n' >"$D/ra.conf.d/idle.conf"
rs_start || tap_bail "restart failed"
svc_conf # the new port (read by a new agent)
agent_stop
login 0
tap_check "login with a 2 s idle timeout" [ "$l_rc" = 0 ]
sleep 4
tap_check "the agent forgot the admin token at the idle timeout, unasked" \
    grep -q "the admin session ended after 2 idle seconds" "$XDG_RUNTIME_DIR/p11enroll/agent.log"
"$P11ENROLL" admin status >"$T/status.out" 2>&1
tap_check "admin status: not logged in" grep -q "Not logged in" "$T/status.out"
rs_stop
tap_done
