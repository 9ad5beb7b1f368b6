#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# p11enroll-ra serve against bad input (research/security.md b5: B1-B13,
# B19, B20): each refused with its problem+json type and the database
# unchanged (without the audit table) or changed only as intended (the
# failure counter).  Also the OTP replay race (exactly one of 20
# concurrent submissions of one code wins), T+-2 codes, lockout after 5
# failures and the audited unlock, an expired window, key-in-use and
# rate limiting before hashing.

. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/ra.sh"
. "$top_srcdir/tests/lib/ra-serve.sh"

for c in sqlite3 oathtool python3 curl openssl; do
	command -v $c >/dev/null 2>&1 ||
	    tap_skip_all "$c not installed (Debian packages sqlite3, oathtool, python3, curl, openssl)"
done

tap_plan 67
tap_tmpdir T
rs_init
for u in U1 U2 U3 U4 U5 U6; do
	rs_user $u
done
rs_start || tap_bail "the server did not start: $(cat "$T/serve.log")"

# session: malformed requests, 400 before any lookup (R09)
sess_raw()
{
	printf '%s' "$1" >"$T/raw.json"
	rs_req POST /api/v1/enrollment/session \
	    -H "Content-Type: ${2:-application/json}" --data-binary @"$T/raw.json"
}
before=$(sqlite3 "$D/ra.db" .dump)
sess_raw '{"contract_id":"'"$C"'","user_id":"U1","password":"x","otp":"1"}' text/plain
rs_problem "session with text/plain: 415 unsupported-media-type" 415 unsupported-media-type
sess_raw '{"contract_id":"'"$C"'","user_id":"U1",'
rs_problem "truncated JSON: 400 invalid-request" 400 invalid-request
sess_raw '{"contract_id":"'"$C"'","user_id":"U1","password":"x"}'
rs_problem "a missing member: 400 invalid-request" 400 invalid-request
sess_raw '{"contract_id":"'"$C"'","user_id":"U1","password":"x","otp":"1","admin":true}'
rs_problem "an extra member: 400 invalid-request" 400 invalid-request
sess_raw '{"contract_id":"'"$C"'","user_id":"U1","password":"x","otp":123456}'
rs_problem "a number for the OTP: 400 invalid-request" 400 invalid-request
sess_raw '{"contract_id":"'"$C"'","contract_id":"'"$C"'","user_id":"U1","password":"x","otp":"1"}'
rs_problem "a duplicate member: 400 invalid-request" 400 invalid-request
for cid in 0123456789 012345678901 012-3456789 "０１２３４５６７８９０" "0123456789'"; do
	sess_raw '{"contract_id":"'"$cid"'","user_id":"U1","password":"x","otp":"123456"}'
	rs_problem "contract ID '$cid': 400 invalid-request" 400 invalid-request
done
sess_raw '{"contract_id":"'"$C"'","user_id":"U1\u0000","password":"x","otp":"1"}'
rs_problem "a NUL in the user ID: 400 invalid-request" 400 invalid-request
sess_raw '{"contract_id":"'"$C"'","user_id":"U1'"'"' OR 1=1--","password":"x","otp":"1"}'
rs_problem "SQL in the user ID: 400 invalid-request" 400 invalid-request
long=$(python3 -c 'print("A" * 10000)')
sess_raw '{"contract_id":"'"$C"'","user_id":"'"$long"'","password":"x","otp":"1"}'
rs_problem "a 10 KB user ID: 400 invalid-request" 400 invalid-request
pw2k=$(python3 -c 'print("p" * 2000)')
sess_raw '{"contract_id":"'"$C"'","user_id":"U1","password":"'"$pw2k"'","otp":"1"}'
rs_problem "a 2000-byte password: 400 invalid-request" 400 invalid-request
python3 -c 'import sys; sys.stdout.write("{\"contract_id\":\"'"$C"'\",\"user_id\":\"U1\",\"password\":\"" + "p" * 1000000 + "\",\"otp\":\"1\"}")' >"$T/big.json"
rs_req POST /api/v1/enrollment/session -H 'Content-Type: application/json' \
    -H 'Expect: 100-continue' --data-binary @"$T/big.json"
rs_problem "a 1 MB password: 413 request-too-large" 413 request-too-large
tap_check "none of these touched the database (not even the audit)" \
    eval '[ "$(sqlite3 "$D/ra.db" .dump)" = "$before" ]'

# wrong factors: one generic answer, the counter counts
rs_session U1 999999
rs_problem "a wrong OTP: 401 invalid-credentials" 401 invalid-credentials
PW0=$PW
PW=Wrong-Password-1
rs_session U1
PW=$PW0
rs_problem "a wrong password: 401 invalid-credentials" 401 invalid-credentials
rs_session U9
rs_problem "an unknown user: 401 invalid-credentials" 401 invalid-credentials
tap_check "the failure counter covers both factors (2)" eval \
    '[ "$(sqlite3 "$D/ra.db" "SELECT failures FROM users WHERE user_id = '"'U1'"'")" = 2 ]'
rs_session U1 "$(rs_otp U1 61)"
rs_problem "the code of T+2: 401 invalid-credentials" 401 invalid-credentials
rs_session U1 "$(rs_otp U1 -61)"
rs_problem "the code of T-2: 401 invalid-credentials" 401 invalid-credentials
for o in 12345 1234567 "１２３４５６" " 123456"; do
	rs_session U2 "$o"
	rs_problem "OTP '$o': 401 invalid-credentials" 401 invalid-credentials
done
"$RA" unlock "$C" U2 >/dev/null 2>&1
rs_session U1
tap_check "the right factors: 200, and the counter is reset" sh -c \
    "[ '$code' = 200 ] && [ \"\$(sqlite3 '$D/ra.db' \"SELECT failures FROM users WHERE user_id = 'U1'\")\" = 0 ]"
TOKEN1=$TOKEN
rs_session U1 "$rs_otp_val"
rs_problem "the same code again: 401 otp-replayed" 401 otp-replayed
tap_check "audited as a replay, with the peer address" sh -c \
    "sqlite3 '$D/ra.db' \"SELECT detail, peer FROM audit WHERE action = 'session' AND target = '$C/U1'\" | grep -qx 'otp replayed|127.0.0.1'"

# the replay race: one code, 20 concurrent submissions
otp=$(rs_otp U3)
printf '{"contract_id":"%s","user_id":"U3","password":"%s","otp":"%s"}' \
    "$C" "$PW" "$otp" >"$T/race.json"
i=0
race_pids=
while [ "$i" -lt 20 ]; do
	curl -sS --noproxy '*' --max-time 30 --cacert "$D/server-ca.crt" \
	    -o "$T/race.$i" -w '%{http_code}\n' -H 'Content-Type: application/json' \
	    --data-binary @"$T/race.json" "$URL/api/v1/enrollment/session" \
	    >"$T/race.code.$i" 2>/dev/null &
	race_pids="$race_pids $!"
	i=$((i + 1))
done
for p in $race_pids; do
	wait "$p"
done
tap_check "exactly one of 20 concurrent submissions of one code wins" \
    eval '[ "$(cat "$T"/race.code.* | grep -c "^200$")" = 1 ]'
tap_check "the others were refused (otp-replayed or account-locked)" \
    eval '[ "$(cat "$T"/race.code.* | grep -Ec "^(401|403)$")" = 19 ]'
tap_check "one token was issued" eval \
    '[ "$(sqlite3 "$D/ra.db" "SELECT count(*) FROM enroll_codes e JOIN users u ON u.id = e.user WHERE u.user_id = '"'U3'"' AND kind = '"'token'"'")" = 1 ]'
"$RA" unlock "$C" U3 >/dev/null 2>&1

# lockout after 5 failures, audited unlock
i=0
while [ "$i" -lt 5 ]; do
	rs_session U4 000000
	i=$((i + 1))
done
rs_problem "the 5th failure: 401 invalid-credentials" 401 invalid-credentials
tap_check "the account is locked" eval \
    '[ "$(sqlite3 "$D/ra.db" "SELECT locked, failures FROM users WHERE user_id = '"'U4'"'")" = "1|5" ]'
rs_session U4
rs_problem "then even the right factors: 403 account-locked" 403 account-locked
tap_check "the lock is audited" sh -c \
    "sqlite3 '$D/ra.db' \"SELECT action FROM audit WHERE target = '$C/U4'\" | grep -qx lock"
"$RA" unlock "$C" U4 >/dev/null 2>&1
tap_check "unlock is audited" sh -c \
    "sqlite3 '$D/ra.db' \"SELECT action, result FROM audit WHERE target = '$C/U4'\" | grep -qx 'unlock|ok'"
rs_session U4 "$(rs_otp U4 30)"
tap_check "after the unlock the right factors work" [ "$code" = 200 ]
TOKEN4=$TOKEN

# simpleenroll with bad input; nothing consumed (the token still works)
rs_csr U1
before=$(rs_dump)
rs_req POST /.well-known/est/simpleenroll -H "Authorization: Bearer $TOKEN1" \
    --data-binary @"$T/U1.csr" -H 'Content-Type: application/json'
rs_problem "CSR as application/json: 415 unsupported-media-type" 415 unsupported-media-type
rs_req POST /.well-known/est/simpleenroll -H "Authorization: Bearer $TOKEN1" \
    --data-binary @"$T/U1.csr" -H 'Content-Type:'
rs_problem "no Content-Type: 415 unsupported-media-type" 415 unsupported-media-type
printf 'MIIB!!notbase64' >"$T/bad.b64"
rs_enroll "$T/bad.b64" -H "Authorization: Bearer $TOKEN1"
rs_problem "characters outside base64: 400 csr-invalid" 400 csr-invalid
tr '+/' '-_' <"$T/U1.csr" >"$T/url.b64"
if grep -q '[-_]' "$T/url.b64"; then
	rs_enroll "$T/url.b64" -H "Authorization: Bearer $TOKEN1"
	rs_problem "the base64url alphabet: 400 csr-invalid" 400 csr-invalid
else
	tap_skip "the base64url alphabet: 400 csr-invalid" "no + or / in this CSR"
fi
{ printf '=' ; cat "$T/U1.csr"; } >"$T/pad.b64"
rs_enroll "$T/pad.b64" -H "Authorization: Bearer $TOKEN1"
rs_problem "a misplaced '=': 400 csr-invalid" 400 csr-invalid
head -c 100 "$T/U1.der" | base64 >"$T/trunc.b64"
rs_enroll "$T/trunc.b64" -H "Authorization: Bearer $TOKEN1"
rs_problem "a truncated CSR: 400 csr-invalid" 400 csr-invalid
{ cat "$T/U1.der"; printf 'garbage'; } | base64 >"$T/trail.b64"
rs_enroll "$T/trail.b64" -H "Authorization: Bearer $TOKEN1"
rs_problem "trailing garbage: 400 csr-invalid" 400 csr-invalid
python3 -c '
import sys
d = bytearray(open(sys.argv[1], "rb").read())
d[40] ^= 1  # inside the subject public key, covered by the signature
sys.stdout.buffer.write(bytes(d))' "$T/U1.der" | base64 >"$T/flip.b64"
rs_enroll "$T/flip.b64" -H "Authorization: Bearer $TOKEN1"
rs_problem "a bad self-signature: 400 csr-invalid" 400 csr-invalid
rs_csr weak rsa1024
rs_enroll "$T/weak.csr" -H "Authorization: Bearer $TOKEN1"
rs_problem "RSA-1024: 400 key-policy-violation" 400 key-policy-violation
if rs_csr p192 p192 && [ -s "$T/p192.der" ]; then
	rs_enroll "$T/p192.csr" -H "Authorization: Bearer $TOKEN1"
	rs_problem "EC P-192: 400 key-policy-violation" 400 key-policy-violation
else
	tap_skip "EC P-192: 400 key-policy-violation" "OpenSSL here cannot make P-192 keys"
fi
openssl req -new -key "$T/U1.key" -subj / -addext basicConstraints=critical,CA:TRUE \
    -outform DER 2>/dev/null | base64 >"$T/ca.b64"
rs_enroll "$T/ca.b64" -H "Authorization: Bearer $TOKEN1"
rs_problem "a CSR asking for CA:TRUE: 400 extension-not-allowed" 400 extension-not-allowed
openssl req -new -key "$T/U1.key" -subj /CN=someone-else -outform DER 2>/dev/null |
    base64 >"$T/cn.b64"
rs_enroll "$T/cn.b64" -H "Authorization: Bearer $TOKEN1"
rs_problem "another subject: 400 extension-not-allowed" 400 extension-not-allowed
python3 -c 'import sys; sys.stdout.write("A" * (16 * 1024 + 1))' >"$T/huge.b64"
rs_enroll "$T/huge.b64" -H "Authorization: Bearer $TOKEN1"
rs_problem "a body of 16 KiB + 1: 413 request-too-large" 413 request-too-large
rs_enroll "$T/U1.csr" -H "Authorization: Bearer AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
rs_problem "an unknown token: 401 invalid-credentials" 401 invalid-credentials
rs_same "none of these consumed or changed anything" "$before"
rs_enroll "$T/U1.csr" -H "Authorization: Bearer $TOKEN1"
tap_check "the token still works afterwards" [ "$code" = 200 ]

# a used token with another key; the window used
rs_csr U1b
before=$(rs_dump)
rs_enroll "$T/U1b.csr" -H "Authorization: Bearer $TOKEN1"
rs_problem "the used token with another key: 403 key-mismatch" 403 key-mismatch
rs_same "... nothing changed" "$before"
rs_session U1 "$(rs_otp U1 30)"
rs_problem "a session after the window was used: 403 no-enrollment-window" \
    403 no-enrollment-window

# key in use: U4 presents U1's key
rs_csr U1 same
before=$(rs_dump)
rs_enroll "$T/U1.csr" -H "Authorization: Bearer $TOKEN4"
rs_problem "another user's key: 409 key-in-use" 409 key-in-use
tap_check "nothing issued, window still open" eval \
    '[ "$(sqlite3 "$D/ra.db" "SELECT w.state FROM windows w JOIN users u ON u.id = w.user WHERE u.user_id = '"'U4'"'")" = open ]'

# an expired window (t_end in the past): the token no longer serves
rs_session U5
TOKEN5=$TOKEN
sqlite3 "$D/ra.db" "UPDATE windows SET closes = strftime('%s', 'now') - 1 WHERE user = (SELECT id FROM users WHERE user_id = 'U5')"
rs_csr U5
before=$(rs_dump)
rs_enroll "$T/U5.csr" -H "Authorization: Bearer $TOKEN5"
rs_problem "an expired window: 403 no-enrollment-window" 403 no-enrollment-window
rs_same "... nothing consumed" "$before"
rs_session U5 "$(rs_otp U5 30)"
rs_problem "and no new session: 403 no-enrollment-window" 403 no-enrollment-window

# rate limiting before hashing: a server with a burst of 2
rs_stop
printf '[server]\nrate-limit = 1\nrate-burst = 2\n' >"$D/ra.conf.d/zz-rate.conf"
rs_start || tap_bail "restart failed"
rs_session U6 111111
rs_session U6 111111
rs_session U6 111111
rs_problem "the 3rd attempt at once: 429 rate-limited" 429 rate-limited
tap_check "with Retry-After" grep -qi '^Retry-After: [1-9]' "$T/hdr"
sleep 0.2
tap_check "answered without hashing (the server took under 5 ms)" sh -c \
    "grep 'POST /api/v1/enrollment/session 429' '$T/serve.log' | tail -1 | grep -Eq ' [0-4]\.[0-9] ms$'"
tap_check "and not counted as a failure" eval \
    '[ "$(sqlite3 "$D/ra.db" "SELECT failures FROM users WHERE user_id = '"'U6'"'")" = 2 ]'
rs_stop
tap_done
