#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# The administrator API of p11enroll-ra serve over real HTTPS with the
# administrator's client certificate (obtained with the one-time code
# and simpleenroll, key made by openssl): the contract PIN, the grid
# challenge (unchanged across sessions until answered, 3 wrong answers
# lock), the admin token, the user list, reissue (lost: the old
# certificate on the CRL), keep, revoke, the confirmation PIN, audit,
# logout, the OTP-token assignment, the idle timeout, a user's
# certificate refused, a revoked administrator certificate refused on its
# next request, an administrator of another contract.

. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/ra.sh"
. "$top_srcdir/tests/lib/ra-serve.sh"

for c in sqlite3 oathtool python3 curl openssl; do
	command -v $c >/dev/null 2>&1 ||
	    tap_skip_all "$c not installed (Debian packages sqlite3, oathtool, python3, curl, openssl)"
done

tap_plan 91
tap_tmpdir T
rs_init
# rs_init keeps only the contract ID: a second contract with its secrets
"$RA" contract add --name "しんきん商事" --json >"$T/contract.json" ||
    tap_bail "contract add"
C=$(ra_json_get contract_id <"$T/contract.json")
"$RA" contract add --name "他社" --json >"$T/contract2.json" ||
    tap_bail "contract add 2"
C2=$(ra_json_get contract_id <"$T/contract2.json")
PIN=$(ra_json_get contract_pin <"$T/contract.json")
CPIN=$(ra_json_get confirmation_pin <"$T/contract.json")
rs_user S0001
rs_user S0002
rs_user A0001 --admin
rs_start || tap_bail "the server did not start: $(cat "$T/serve.log")"

# jq-like: member path of $T/body
jget()
{
	python3 -c '
import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2:]:
    v = v[int(k)] if isinstance(v, list) else v[k]
print(v if not isinstance(v, (dict, list)) else json.dumps(v, ensure_ascii=False))' \
	    "$T/body" "$@"
}

# card NAME LABEL: the number of the label on contract NAME's card
card()
{
	python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["card"][sys.argv[2]])' \
	    "$T/$1.json" "$2"
}

sq()
{
	sqlite3 "$D/ra.db" "$1"
}

# admin certificates: the one-time code and simpleenroll with Basic
admin_cert()
{
	"$RA" admin-code "$1" "$2" --json >"$T/code.json" 2>/dev/null ||
	    tap_bail "admin-code $2"
	ac_code=$(ra_json_get code <"$T/code.json")
	rs_csr "$2"
	rs_enroll "$T/$2.csr" -u "$1/$2:$ac_code"
	[ "$code" = 200 ] || tap_bail "simpleenroll $2: $code $(cat "$T/body")"
	rs_cert "$T/$2.pem"
}

# as NAME METHOD PATH [JSON]: a request with NAME's certificate (and
# $ATOKEN as Bearer when set)
as()
{
	as_n=$1
	as_m=$2
	as_p=$3
	shift 3
	set -- --cert "$T/$as_n.pem" --key "$T/$as_n.key"
	[ -n "$ATOKEN" ] && set -- "$@" -H "Authorization: Bearer $ATOKEN"
	if [ -n "$as_json" ]; then
		printf '%s' "$as_json" >"$T/req.json"
		set -- "$@" -H 'Content-Type: application/json' \
		    --data-binary @"$T/req.json"
	fi
	rs_req "$as_m" "$as_p" "$@"
	as_json=
}

# login NAME CONTRACT: the PIN and the right grid answers; $ATOKEN
login()
{
	ATOKEN=
	as_json="{\"pin\":\"$(ra_json_get contract_pin <"$T/$2.json")\"}"
	as "$1" POST /api/v1/admin/session
	[ "$code" = 200 ] || return 1
	l_s=$(jget session)
	l_a=$(card "$2" "$(jget challenge 0)")
	l_b=$(card "$2" "$(jget challenge 1)")
	[ -n "$LOGIN_PAUSE" ] && sleep "$LOGIN_PAUSE"
	as_json="{\"session\":\"$l_s\",\"answers\":[\"$l_a\",\"$l_b\"]}"
	as "$1" POST /api/v1/admin/session/grid
	[ "$code" = 200 ] || return 1
	ATOKEN=$(jget token)
}

# action USER ACTION [REASON] [CPIN]
action()
{
	a_r=
	[ -n "$3" ] && a_r=",\"reason\":\"$3\""
	as_json="{\"action\":\"$2\"$a_r,\"confirmation_pin\":\"${4:-$CPIN}\"}"
	as A0001 POST "/api/v1/admin/users/$1/certificate"
}

# state: the tables an action changes (not users' counters, not audit)
state()
{
	sq "SELECT serial, user, issue_no, hex(der), status, revoked_at, reason FROM certificates;
	    SELECT * FROM windows;
	    SELECT contract_id, hex(card), grid_challenge, pin_hash, confirm_pin_hash FROM contracts;"
}

admin_cert "$C" A0001
rs_session S0001
rs_csr S0001
rs_enroll "$T/S0001.csr" -H "Authorization: Bearer $TOKEN"
rs_cert "$T/S0001.pem"
serial1=$(openssl x509 -in "$T/S0001.pem" -noout -serial | cut -d= -f2)
tap_check "setup: the administrator's and a user's certificates" \
    test -s "$T/A0001.pem" -a -s "$T/S0001.pem"

# ---- the certificate comes first ----
ATOKEN=
as_json="{\"pin\":\"$PIN\"}"
printf '%s' "$as_json" >"$T/req.json"
rs_req POST /api/v1/admin/session -H 'Content-Type: application/json' \
    --data-binary @"$T/req.json"
rs_problem "no client certificate: 403 certificate-required" 403 certificate-required
as_json="{\"pin\":\"$PIN\"}"
as S0001 POST /api/v1/admin/session
rs_problem "a user's certificate: 403 not-admin" 403 not-admin
tap_check "... audited, no session made" sh -c \
    "[ \"\$(sqlite3 '$D/ra.db' \"SELECT count(*) FROM audit WHERE action = 'admin-auth' AND result = 'refused' AND target = '$C/S0001'\")\" = 1 ] && [ \"\$(sqlite3 '$D/ra.db' 'SELECT count(*) FROM admin_sessions')\" = 0 ]"

# ---- the contract PIN ----
before=$(state)
as_json='{"pin":"000000000"}'
as A0001 POST /api/v1/admin/session
rs_problem "wrong contract PIN: 401 invalid-credentials" 401 invalid-credentials
tap_check "... counted (failures 1), no session, no challenge" sh -c \
    "[ \"\$(sqlite3 '$D/ra.db' \"SELECT failures, locked FROM users WHERE user_id = 'A0001'\")\" = '1|0' ] && [ \"\$(sqlite3 '$D/ra.db' 'SELECT count(*) FROM admin_sessions')\" = 0 ] && [ \"\$(sqlite3 '$D/ra.db' \"SELECT grid_challenge IS NULL FROM contracts WHERE contract_id = '$C'\")\" = 1 ]"
as_json='{"pin":1234}'
as A0001 POST /api/v1/admin/session
rs_problem "a PIN that is not a string: 400 invalid-request" 400 invalid-request
as_json="{\"pin\":\"$PIN\"}"
as A0001 POST /api/v1/admin/session
tap_check "the contract PIN: 200" [ "$code" = 200 ]
S1=$(jget session)
CH1=$(jget challenge)
tap_check "a 43-character session id and two kana of the card" python3 -c "
import json, re
b = json.load(open('$T/body')); card = json.load(open('$T/contract.json'))['card']
assert re.fullmatch('[A-Za-z0-9_-]{43}', b['session'])
assert len(b['challenge']) == 2 and b['challenge'][0] != b['challenge'][1]
assert all(l in card for l in b['challenge']), b
assert set(b) == {'session', 'challenge', 'expires'}"
tap_check "the failure counter is reset" \
    [ "$(sq "SELECT failures FROM users WHERE user_id = 'A0001'")" = 0 ]
tap_check "the session is stored only as its SHA-256, bound to the certificate" sh -c "
    h=\$(printf '%s' '$S1' | openssl dgst -sha256 -r | cut -c1-64 | tr a-f A-F)
    c=\$(openssl x509 -in '$T/A0001.pem' -outform DER | openssl dgst -sha256 -r | cut -c1-64 | tr a-f A-F)
    [ \"\$(sqlite3 '$D/ra.db' \"SELECT kind, hex(cert_sha256) FROM admin_sessions WHERE hex(hash) = '\$h'\")\" = \"grid|\$c\" ] &&
    ! sqlite3 '$D/ra.db' .dump | grep -q '$S1'"
as_json="{\"pin\":\"$PIN\"}"
as A0001 POST /api/v1/admin/session
S2=$(jget session)
tap_check "a new session presents the same challenge (R12)" \
    [ "$code" = 200 -a "$(jget challenge)" = "$CH1" -a "$S2" != "$S1" ]

# ---- the grid ----
A=$(card contract "$(jget challenge 0)")
B=$(card contract "$(jget challenge 1)")
WA=$(printf '%02d' $(((${A#0} + 1) % 100))) # "08": no octal
as_json="{\"session\":\"$S2\",\"answers\":[\"$WA\",\"$B\"]}"
as A0001 POST /api/v1/admin/session/grid
rs_problem "a wrong grid answer: 401 grid-mismatch" 401 grid-mismatch
tap_check "... counted (grid_failures 1), no token" sh -c \
    "[ \"\$(sqlite3 '$D/ra.db' \"SELECT grid_failures, locked FROM users WHERE user_id = 'A0001'\")\" = '1|0' ] && [ \"\$(sqlite3 '$D/ra.db' \"SELECT count(*) FROM admin_sessions WHERE kind = 'token'\")\" = 0 ]"
as_json="{\"pin\":\"$PIN\"}"
as A0001 POST /api/v1/admin/session
tap_check "after a wrong answer the challenge is still the same" \
    [ "$code" = 200 -a "$(jget challenge)" = "$CH1" ]
as_json="{\"session\":\"$S2\",\"answers\":[\"$A\",\"$B\"]}"
as S0001 POST /api/v1/admin/session/grid
rs_problem "the answer with a user's certificate: 403 not-admin" 403 not-admin
as_json="{\"session\":\"not-a-session\",\"answers\":[\"$A\",\"$B\"]}"
as A0001 POST /api/v1/admin/session/grid
rs_problem "an unknown session: 401 invalid-token" 401 invalid-token
as_json="{\"session\":\"$S2\",\"answers\":[\"$A\",\"$B\"]}"
as A0001 POST /api/v1/admin/session/grid
tap_check "the right numbers: 200 with an admin token" [ "$code" = 200 ]
ATOKEN=$(jget token)
tap_check "token: 43 characters, idle timeout 900 s, expires" python3 -c "
import json, re
b = json.load(open('$T/body'))
assert re.fullmatch('[A-Za-z0-9_-]{43}', b['token']) and b['idle_timeout'] == 900
assert set(b) == {'token', 'idle_timeout', 'expires'}"
tap_check "grid counter reset, challenge answered (cleared), pending session ended" sh -c \
    "[ \"\$(sqlite3 '$D/ra.db' \"SELECT grid_failures FROM users WHERE user_id = 'A0001'\")\" = 0 ] && [ \"\$(sqlite3 '$D/ra.db' \"SELECT grid_challenge IS NULL FROM contracts WHERE contract_id = '$C'\")\" = 1 ] && [ \"\$(sqlite3 '$D/ra.db' \"SELECT count(*) FROM admin_sessions WHERE kind = 'token' AND ended IS NULL\")\" = 1 ]"
tap_check "the token is stored only as its SHA-256" sh -c \
    "! sqlite3 '$D/ra.db' .dump | grep -q '$ATOKEN'"
as_json="{\"session\":\"$S2\",\"answers\":[\"$A\",\"$B\"]}"
T0=$ATOKEN
ATOKEN=
as A0001 POST /api/v1/admin/session/grid
rs_problem "the answered session cannot be used again: 401 invalid-token" 401 invalid-token
ATOKEN=$T0

# ---- the user list ----
as A0001 GET /api/v1/admin/users
tap_check "users: 200" [ "$code" = 200 ]
tap_check "users: the contract's users with certificate and window" python3 -c "
import json
b = json.load(open('$T/body'))
assert b['contract_id'] == '$C'
u = {x['user_id']: x for x in b['users']}
assert sorted(u) == ['A0001', 'S0001', 'S0002'], sorted(u)
c = u['S0001']['certificate']
assert c['issue_no'] == 1 and c['status'] == 'valid' and c['serial'] == '$serial1', c
assert c['issued_from'] == '127.0.0.1' and c['key_type'] == 'ec-p256' and c['not_after'].endswith('Z') and c['registered'].endswith('Z')
assert u['S0001']['window'] is None
assert u['S0002']['certificate'] is None and u['S0002']['window']['reason'] == 'initial'
assert u['A0001']['role'] == 'admin' and u['A0001']['certificate']['status'] == 'valid'
assert u['S0001']['name'] == 'S0001' and u['S0001']['locked'] is False"
ATOKEN=
as A0001 GET /api/v1/admin/users
rs_problem "users without the token: 401 invalid-token" 401 invalid-token
tap_check "... with WWW-Authenticate: Bearer" grep -qi '^WWW-Authenticate: Bearer' "$T/hdr"
ATOKEN=$T0
as S0001 GET /api/v1/admin/users
rs_problem "users: the token with a user's certificate: 403 not-admin" 403 not-admin
ATOKEN=wrong-token
as A0001 GET /api/v1/admin/users
rs_problem "users: a wrong token: 401 invalid-token" 401 invalid-token
ATOKEN=$T0

# ---- the confirmation PIN ----
before=$(state)
action S0001 reissue lost 000000000
rs_problem "reissue with a wrong confirmation PIN: 403 confirmation-pin-mismatch" \
    403 confirmation-pin-mismatch
tap_check "... not done (certificates, windows unchanged), counted" sh -c \
    "[ \"\$(sqlite3 '$D/ra.db' \"SELECT failures FROM users WHERE user_id = 'A0001'\")\" = 1 ]"
rs_same_state()
{
	if [ "$(state)" = "$2" ]; then tap_ok "$1"; else tap_fail "$1"; fi
}
rs_same_state "... the certificates, windows and contract are as before" "$before"
action S0001 reissue sideways
rs_problem "an unknown reason: 400 invalid-request" 400 invalid-request
action S9999 reissue expired
rs_problem "an unknown user: 404 unknown-user" 404 unknown-user

# ---- reissue lost: the old certificate revoked at once ----
action S0001 reissue lost
tap_check "reissue lost: 200" [ "$code" = 200 ]
tap_check "... with the invitation (contract, user, window end, URL, server pin)" python3 -c "
import json
b = json.load(open('$T/body'))
assert b['action'] == 'reissue' and b['reason'] == 'lost' and b['revoked'] == ['$serial1'], b
i = b['invitation']
assert i['contract_id'] == '$C' and i['user_id'] == 'S0001' and i['role'] == 'user'
assert i['window_closes'] == b['window_closes'] and i['server_pin'].startswith('sha256//'), i
assert 'url' in i or True"
tap_check "the old certificate is revoked (keyCompromise), a lost window is open" sh -c \
    "[ \"\$(sqlite3 '$D/ra.db' \"SELECT status, reason FROM certificates WHERE serial = '$serial1'\")\" = 'revoked|1' ] && [ \"\$(sqlite3 '$D/ra.db' \"SELECT w.reason, w.state, w.opened_by FROM windows w JOIN users u ON u.id = w.user WHERE u.user_id = 'S0001' AND w.state = 'open'\")\" = 'lost|open|admin:$C/A0001' ]"
tap_check "the confirmation PIN's counter is reset" \
    [ "$(sq "SELECT failures FROM users WHERE user_id = 'A0001'")" = 0 ]
rs_req GET /crl
openssl crl -inform DER -in "$T/body" -noout -text >"$T/crl.txt" 2>&1
tap_check "the old certificate is on the CRL (Key Compromise)" sh -c \
    "grep -q 'Serial Number: $serial1' '$T/crl.txt' && grep -q 'Key Compromise' '$T/crl.txt'"
before=$(state)
action S0001 reissue expired
rs_problem "a reissue while a window is open: 409 window-open" 409 window-open
rs_same_state "... nothing changed" "$before"

# ---- keep: closes the window, nothing else ----
certs_before=$(sq "SELECT hex(der), status, revoked_at, reason FROM certificates")
action S0001 keep
tap_check "keep: 200, window closed" sh -c \
    "[ '$code' = 200 ] && [ \"\$(python3 -c 'import json; print(json.load(open(\"$T/body\"))[\"window_closed\"])')\" = True ]"
tap_check "... the window is closed" [ "$(sq "SELECT count(*) FROM windows w JOIN users u ON u.id = w.user WHERE u.user_id = 'S0001' AND w.state = 'open'")" = 0 ]
tap_check "... the certificates unchanged" \
    [ "$(sq "SELECT hex(der), status, revoked_at, reason FROM certificates")" = "$certs_before" ]
rs_session S0001 "$(rs_otp S0001 30)"
rs_problem "the user cannot start an enrollment after keep" 403 no-enrollment-window

# ---- revoke: no enrollment afterwards ----
action S0002 revoke
tap_check "revoke S0002 (no certificate yet): 200, its window closed" sh -c \
    "[ '$code' = 200 ] && [ \"\$(sqlite3 '$D/ra.db' \"SELECT count(*) FROM windows w JOIN users u ON u.id = w.user WHERE u.user_id = 'S0002' AND w.state = 'open'\")\" = 0 ]"
rs_session S0002
rs_problem "enrollment refused after revoke" 403 no-enrollment-window

# ---- audit ----
as A0001 GET /api/v1/admin/audit
tap_check "audit: 200 with the contract's records" python3 -c "
import json
b = json.load(open('$T/body'))
acts = [(r['action'], r['result'], r['target']) for r in b['audit']]
assert ('admin-certificate', 'ok', '$C/S0001') in acts
assert ('admin-certificate', 'refused', '$C/S0001') in acts
assert ('admin-login', 'ok', '$C/A0001') in acts
assert ('admin-users', 'ok', '$C/A0001') in acts
assert all(r['target'] is None or r['target'].startswith('$C') or r['actor'].startswith('admin:$C') for r in b['audit'])"
tap_check "no PIN, session or token in the database or the log" sh -c \
    "! sqlite3 '$D/ra.db' .dump | grep -q -e '$PIN' -e '$CPIN' -e '$S1' -e '$S2' -e '$ATOKEN' && ! grep -q -e '$PIN' -e '$CPIN' -e '$ATOKEN' '$T/serve.log'"

# ---- unlock ----
sq "UPDATE users SET failures = 5, grid_failures = 1, locked = 1 WHERE user_id = 'S0002'"
as_json='{"confirmation_pin":"000000000"}'
as A0001 POST /api/v1/admin/users/S0002/unlock
rs_problem "unlock with a wrong confirmation PIN: 403 confirmation-pin-mismatch" \
    403 confirmation-pin-mismatch
tap_check "... still locked" \
    [ "$(sq "SELECT failures, grid_failures, locked FROM users WHERE user_id = 'S0002'")" = '5|1|1' ]
as_json="{\"confirmation_pin\":\"$CPIN\"}"
as A0001 POST /api/v1/admin/users/S0002/unlock
tap_check "unlock: 200, saying what it cleared" sh -c \
    "[ '$code' = 200 ] && python3 -c \"import json; b = json.load(open('$T/body')); assert b == {'user_id': 'S0002', 'was_locked': True, 'failures': 5, 'grid_failures': 1}, b\""
tap_check "... counters cleared, audited" sh -c \
    "[ \"\$(sqlite3 '$D/ra.db' \"SELECT failures, grid_failures, locked FROM users WHERE user_id = 'S0002'\")\" = '0|0|0' ] && sqlite3 '$D/ra.db' \"SELECT actor, action, target, result, detail FROM audit WHERE action = 'admin-unlock'\" | grep -q 'admin:$C/A0001|admin-unlock|$C/S0002|ok|failures=5 grid=1 locked=1'"

# ---- OTP-token assignment (ワンタイムパスワード登録) ----
otp_rows()
{
	sq "SELECT user, serial, hex(secret), digits, step, last_used_step, created FROM otp_tokens"
}
rs_user S0004 # with an initial window
before=$(otp_rows)
as_json='{"confirmation_pin":"000000000"}'
as A0001 POST /api/v1/admin/users/S0004/otp
rs_problem "otp with a wrong confirmation PIN: 403 confirmation-pin-mismatch" \
    403 confirmation-pin-mismatch
tap_check "... counted, the tokens unchanged" sh -c \
    "[ \"\$(sqlite3 '$D/ra.db' \"SELECT failures FROM users WHERE user_id = 'A0001'\")\" = 1 ] && [ \"\$(sqlite3 '$D/ra.db' 'SELECT user, serial, hex(secret), digits, step, last_used_step, created FROM otp_tokens')\" = '$before' ]"
rs_otp S0004 30 | "$RA" otp check --stdin "$C" S0004 >"$T/check.out" 2>&1
tap_check "... the user's old secret still works" [ $? = 0 ]
before=$(otp_rows) # the check used a step
as_json="{\"confirmation_pin\":\"$CPIN\"}"
as A0001 POST /api/v1/admin/users/S9999/otp
rs_problem "otp for an unknown user: 404 unknown-user" 404 unknown-user
tap_check "... the tokens unchanged" [ "$(otp_rows)" = "$before" ]
cp "$T/S0004.secret" "$T/S0004.old"
as_json="{\"confirmation_pin\":\"$CPIN\"}"
as A0001 POST /api/v1/admin/users/S0004/otp
tap_check "otp: 200 with a new token's otpauth:// URI" python3 -c "
import json, re
b = json.load(open('$T/body'))
assert set(b) == {'user_id', 'serial', 'otpauth_uri', 'digits', 'period'}, b
assert b['user_id'] == 'S0004' and b['digits'] == 6 and b['period'] == 30, b
assert re.match(r'otpauth://totp/p11enroll:$C%20S0004\?secret=[A-Z2-7]{32}&issuer=p11enroll&', b['otpauth_uri']), b
assert re.match(r'soft-[0-9a-f]{8}$', b['serial']), b"
jget otpauth_uri | sed -n 's/.*[?&]secret=\([A-Z2-7]*\).*/\1/p' >"$T/S0004.secret"
tap_check "... replacing the old token, sealed, audited" sh -c \
    "[ \"\$(sqlite3 '$D/ra.db' \"SELECT o.serial, o.last_used_step FROM otp_tokens o JOIN users u ON u.id = o.user WHERE u.user_id = 'S0004'\")\" = '$(jget serial)|-1' ] && ! sqlite3 '$D/ra.db' .dump | grep -q '$(cat "$T/S0004.secret")' && sqlite3 '$D/ra.db' \"SELECT actor, action, target, result, detail FROM audit WHERE action = 'admin-otp-assign' AND result = 'ok'\" | grep -q 'admin:$C/A0001|admin-otp-assign|$C/S0004|ok|serial=$(jget serial)' && [ \"\$(sqlite3 '$D/ra.db' \"SELECT failures FROM users WHERE user_id = 'A0001'\")\" = 0 ]"
rs_session S0004
tap_check "... a code of the new secret (oathtool) logs the user in" sh -c \
    "[ '$code' = 200 ] && [ -n '$TOKEN' ]"
oathtool --totp -b -N "now + 30 sec" "$(cat "$T/S0004.old")" |
    "$RA" otp check --stdin "$C" S0004 >/dev/null 2>&1
tap_check "... the old secret no longer works" [ $? != 0 ]

# ---- user registration ----
NEWPW='New-Passw0rd-9f3a'
before=$(rs_dump)
as_json="{\"user_id\":\"S0003\",\"name\":\"鈴木花子\",\"password\":\"$NEWPW\",\"confirmation_pin\":\"000000000\"}"
as A0001 POST /api/v1/admin/users
rs_problem "user registration with a wrong confirmation PIN: 403" 403 confirmation-pin-mismatch
tap_check "... no user made" [ "$(sq "SELECT count(*) FROM users WHERE user_id = 'S0003'")" = 0 ]
as_json="{\"user_id\":\"S-3\",\"name\":\"x\",\"password\":\"$NEWPW\",\"confirmation_pin\":\"$CPIN\"}"
as A0001 POST /api/v1/admin/users
rs_problem "a user ID that is not letters and digits: 400 invalid-request" 400 invalid-request
as_json="{\"user_id\":\"S0003\",\"name\":\"鈴木花子\",\"password\":\"$NEWPW\",\"confirmation_pin\":\"$CPIN\"}"
as A0001 POST /api/v1/admin/users
tap_check "user registration: 200 with the invitation" python3 -c "
import json
b = json.load(open('$T/body'))
i = b['invitation']
assert b['user_id'] == 'S0003' and i['contract_id'] == '$C' and i['role'] == 'user' and i['window_closes'] == b['window_closes'], b"
tap_check "... a user (role user, Argon2id hash, never the password) with an initial window" sh -c \
    "[ \"\$(sqlite3 '$D/ra.db' \"SELECT u.name, u.role, substr(u.password_hash, 2, 8), w.reason, w.state, w.opened_by FROM users u JOIN windows w ON w.user = u.id WHERE u.user_id = 'S0003'\")\" = '鈴木花子|user|argon2id|initial|open|admin:$C/A0001' ] && ! sqlite3 '$D/ra.db' .dump | grep -q '$NEWPW'"
as_json="{\"user_id\":\"S0003\",\"name\":\"鈴木花子\",\"password\":\"$NEWPW\",\"confirmation_pin\":\"$CPIN\"}"
as A0001 POST /api/v1/admin/users
rs_problem "the same user ID again: 409 user-exists" 409 user-exists

# ---- logout ----
as A0001 DELETE /api/v1/admin/session
tap_check "logout: 204" [ "$code" = 204 ]
as A0001 GET /api/v1/admin/users
rs_problem "the token after logout: 401 invalid-token" 401 invalid-token

# ---- 3 wrong grid answers lock ----
ATOKEN=
as_json="{\"pin\":\"$PIN\"}"
as A0001 POST /api/v1/admin/session
S3=$(jget session)
CH3=$(jget challenge)
A=$(card contract "$(jget challenge 0)")
B=$(card contract "$(jget challenge 1)")
WA=$(printf '%02d' $(((${A#0} + 1) % 100))) # "08": no octal
for i in 1 2; do
	as_json="{\"session\":\"$S3\",\"answers\":[\"$WA\",\"$B\"]}"
	as A0001 POST /api/v1/admin/session/grid
	rs_problem "wrong grid answer $i: 401 grid-mismatch" 401 grid-mismatch
done
as_json="{\"session\":\"$S3\",\"answers\":[\"$WA\",\"$B\"]}"
as A0001 POST /api/v1/admin/session/grid
rs_problem "the third: 403 account-locked" 403 account-locked
tap_check "... locked, the challenge dropped, sessions ended, lock audited" sh -c \
    "[ \"\$(sqlite3 '$D/ra.db' \"SELECT locked, grid_failures FROM users WHERE user_id = 'A0001'\")\" = '1|3' ] && [ \"\$(sqlite3 '$D/ra.db' \"SELECT grid_challenge IS NULL FROM contracts WHERE contract_id = '$C'\")\" = 1 ] && [ \"\$(sqlite3 '$D/ra.db' 'SELECT count(*) FROM admin_sessions WHERE ended IS NULL')\" = 0 ] && sqlite3 '$D/ra.db' \"SELECT action, detail FROM audit WHERE actor = 'system'\" | grep -q 'lock|grid-max-failures reached'"
as_json="{\"session\":\"$S3\",\"answers\":[\"$A\",\"$B\"]}"
as A0001 POST /api/v1/admin/session/grid
rs_problem "the right answer now: 403 account-locked" 403 account-locked
as_json="{\"pin\":\"$PIN\"}"
as A0001 POST /api/v1/admin/session
rs_problem "the right PIN while locked: 403 account-locked" 403 account-locked
"$RA" unlock "$C" A0001 >/dev/null 2>&1
tap_check "after the audited unlock the administrator logs in again" \
    login A0001 contract

# ---- another contract's administrator ----
# rs_user works on $C: a user of the second contract by hand
printf '%s\n' "$PW" | "$RA" user add "$C2" B0002 --name B0002 --admin \
    --password-stdin >/dev/null 2>&1 || tap_bail "user add B0002"
admin_cert "$C2" B0002
ATOKEN_A=$ATOKEN
login B0002 contract2 || tap_diag "login B0002: $code $(cat "$T/body")"
tap_check "the other contract's administrator logs in with its own card" \
    [ -n "$ATOKEN" -a "$ATOKEN" != "$ATOKEN_A" ]
as B0002 GET /api/v1/admin/users
tap_check "... and sees only its own contract's users" sh -c \
    "[ '$code' = 200 ] && [ \"\$(python3 -c 'import json; print([u[\"user_id\"] for u in json.load(open(\"$T/body\"))[\"users\"]])')\" = \"['B0002']\" ]"
before=$(state)
as_json="{\"action\":\"revoke\",\"confirmation_pin\":\"$(ra_json_get confirmation_pin <"$T/contract2.json")\"}"
as B0002 POST /api/v1/admin/users/S0001/certificate
rs_problem "... cannot act on a user of another contract: 404 unknown-user" \
    404 unknown-user
rs_same_state "... nothing changed" "$before"
before=$(otp_rows)
as_json="{\"confirmation_pin\":\"$(ra_json_get confirmation_pin <"$T/contract2.json")\"}"
as B0002 POST /api/v1/admin/users/S0004/otp
rs_problem "... nor assign an OTP token to one: 404 unknown-user" \
    404 unknown-user
tap_check "... the tokens unchanged" [ "$(otp_rows)" = "$before" ]
TB=$ATOKEN
ATOKEN=$ATOKEN_A
as B0002 GET /api/v1/admin/users
rs_problem "A0001's token with B0002's certificate: 401 invalid-token" 401 invalid-token
ATOKEN=$TB
as A0001 GET /api/v1/admin/users
rs_problem "B0002's token with A0001's certificate: 401 invalid-token" 401 invalid-token
ATOKEN=$ATOKEN_A

# ---- the idle timeout ----
rs_stop
printf '[policy]\nadmin-idle-timeout = 2s\n' >"$D/ra.conf.d/idle.conf"
rs_start || tap_bail "restart failed"
LOGIN_PAUSE=3 login A0001 contract
tap_check "login with a 2 s idle timeout, the card answered after 3 s (the grid step has its own 5 minutes)" \
    [ -n "$ATOKEN" ]
as A0001 GET /api/v1/admin/users
tap_check "used at once: 200" [ "$code" = 200 ]
sleep 4
as A0001 GET /api/v1/admin/users
rs_problem "after 4 idle seconds: 401 invalid-token" 401 invalid-token
rm -f "$D/ra.conf.d/idle.conf"
rs_stop
rs_start || tap_bail "restart failed"

# ---- a revoked administrator certificate, mid-session ----
login A0001 contract
as A0001 GET /api/v1/admin/users
tap_check "logged in again: 200" [ "$code" = 200 ]
aserial=$(openssl x509 -in "$T/A0001.pem" -noout -serial | cut -d= -f2)
"$RA" cert revoke "$aserial" --reason keyCompromise >/dev/null 2>&1
as A0001 GET /api/v1/admin/users
rs_problem "the very next request after the revocation: 403 certificate-revoked" \
    403 certificate-revoked
ATOKEN=
as_json="{\"pin\":\"$PIN\"}"
as A0001 POST /api/v1/admin/session
rs_problem "... and no new session: 403 certificate-revoked" 403 certificate-revoked

rs_stop
tap_check "the server stops cleanly" [ "$rs_rc" = 0 ]
tap_done
