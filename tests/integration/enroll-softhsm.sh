#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# User enrollment end to end: p11enroll enroll against p11enroll-ra serve
# over HTTPS on 127.0.0.1, the key on a SoftHSM2 token.  The happy path,
# a wrong password (nothing but the key on the token, the journal says
# why), kill -9 at every crash point followed by a re-run (exactly one key
# pair and one certificate), and the canary PIN and password absent from
# the state directory and the logs.

. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/softhsm.sh"
. "$top_srcdir/tests/lib/agent.sh"
. "$top_srcdir/tests/lib/ra.sh"

for c in softhsm2-util oathtool python3 sqlite3 openssl curl; do
	command -v $c >/dev/null 2>&1 ||
	    tap_skip_all "$c not installed (Debian packages softhsm2, oathtool, python3, sqlite3, openssl, curl)"
done
"$RA" --help 2>/dev/null | grep -q '^  serve' ||
    tap_skip_all "p11enroll-ra serve not built"

CRASHPOINTS="enroll-after-id-journaled enroll-after-keygen pkcs11-after-keygen
enroll-after-csr-journaled enroll-after-submit enroll-after-cert-journaled
enroll-after-token-write"
n_crash=$(echo $CRASHPOINTS | wc -w)
tap_plan $((25 + 4 * n_crash))

tap_tmpdir T
agent_env "$T"
PIN='Pin-Canary-7c41d2'
PW='Canary-Passw0rd-e2e-5521'
softhsm_setup p11e-enroll "$PIN" >&2 || tap_bail "cannot create a SoftHSM2 token"

D=$T/ra
export P11ENROLL_RA_DIR=$D
"$RA" init "$D" >/dev/null 2>&1 || tap_bail "p11enroll-ra init failed"
"$RA" serve --listen 127.0.0.1:0 --port-file "$T/port" 2>"$T/ra.log" &
ra_pid=$!
tap_at_exit "kill $ra_pid"
i=0
while [ ! -s "$T/port" ] && [ $i -lt 100 ]; do
	sleep 0.05
	i=$((i + 1))
done
[ -s "$T/port" ] || { cat "$T/ra.log" >&2; tap_bail "serve did not start"; }
PORT=$(cat "$T/port")
# invitations name the URL the server really listens on; every session
# comes from 127.0.0.1, so the per-address rate limit is raised (the next
# serve reads it)
sed -i -e "s|^url = .*|url = https://127.0.0.1:$PORT\nrate-limit = 10000\nrate-burst = 10000|" "$D/ra.conf"
"$RA" contract add --name "しんきん商事" --json >"$T/contract.json" 2>&1 ||
    tap_bail "contract add failed"
C=$(ra_json_get contract_id <"$T/contract.json")
kill $ra_pid
wait $ra_pid 2>/dev/null
"$RA" serve --listen "127.0.0.1:$PORT" 2>>"$T/ra.log" &
ra_pid=$!
tap_at_exit "kill $ra_pid"
i=0
until curl -sk "https://127.0.0.1:$PORT/.well-known/est/cacerts" >/dev/null ||
    [ $i -ge 100 ]; do
	sleep 0.05
	i=$((i + 1))
done

# new_user ID: a user with an invitation ($T/ID.inv) and an OTP secret
# ($T/ID.otp)
new_user()
{
	printf '%s\n' "$PW" | "$RA" user add "$C" "$1" --name "User $1" \
	    --password-stdin --invitation "$T/$1.inv" >/dev/null 2>&1 || return 1
	"$RA" otp assign "$C" "$1" --json 2>/dev/null | ra_json_get otpauth_uri |
	    sed -n 's/.*[?&]secret=\([A-Z2-7]*\).*/\1/p' >"$T/$1.otp"
	[ -s "$T/$1.otp" ]
}

# otp ID [+SECONDS]: the code of now (or a later step: +1 step is allowed)
otp()
{
	oathtool --totp -b "$(cat "$T/$1.otp")" ${2:+--now "$(date -u -d "@$(($(date +%s) + $2))" '+%Y-%m-%d %H:%M:%S UTC')"}
}

# new_token LABEL: one more token in the same SoftHSM2 directory
new_token()
{
	softhsm2-util --init-token --free --label "$1" --pin "$PIN" \
	    --so-pin 12345678 >/dev/null 2>&1
}

# count URI KIND: objects of that kind on the token (leaf certificates
# only for "certificate")
count()
{
	printf '%s\n' "$PIN" | "$P11ENROLL" --json --pin-stdin token objects \
	    --login "$1" 2>/dev/null | python3 -c '
import json, sys
o = json.load(sys.stdin)["objects"]
k = sys.argv[1]
if k == "ca":
    print(sum(1 for x in o if x["kind"] == "certificate" and x.get("authority")))
elif k == "certificate":
    print(sum(1 for x in o if x["kind"] == "certificate" and not x.get("authority")))
else:
    print(sum(1 for x in o if x["kind"] == k))' "$2"
}

# enroll USER TOKEN [ENV...]: p11enroll enroll with the secrets on stdin
enroll()
{
	e_user=$1
	e_tok=$2
	shift 2
	printf '%s\n%s\n%s\n' "$PIN" "$PW" "$(otp "$e_user" ${E_OTP_LATER:+30})" |
	    env "$@" "$P11ENROLL" enroll --invitation "$T/$e_user.inv" \
	    --token "pkcs11:token=$e_tok" --secrets-stdin
}

# --- the happy path ---
new_user S0001 || tap_bail "user add failed"
enroll S0001 p11e-enroll >"$T/out" 2>"$T/err"
rc=$?
cat "$T/out" "$T/err" >&2
tap_check "enroll with an invitation succeeds" test $rc = 0
tap_check "it ends with the subject, serial, validity and token" sh -c \
    "grep -q 'subject  .*CN=S0001' '$T/out' && grep -q 'serial   [0-9A-F]' '$T/out' && grep -q 'valid    .* UTC to .* UTC' '$T/out' && grep -q 'token    pkcs11:' '$T/out'"
tap_check "each step is shown with its duration" sh -c \
    "grep -q 'key generation .* ms' '$T/out' && grep -q 'issuance .* ms' '$T/out' && grep -q 'token write .* ms' '$T/out'"
tap_check "one private key on the token" test "$(count pkcs11:token=p11e-enroll private-key)" = 1
tap_check "one certificate for it" test "$(count pkcs11:token=p11e-enroll certificate)" = 1
tap_check "and the issuing CA certificate" test "$(count pkcs11:token=p11e-enroll ca)" = 1
"$P11ENROLL" --json list >"$T/list.json" 2>&1
tap_check "list says INSTALLED with subject and expiry" python3 -c '
import json, sys
c = json.load(open(sys.argv[1]))["credentials"]
assert len(c) == 1 and c[0]["state"] == "INSTALLED", c
assert "CN=S0001" in c[0]["subject"] and c[0]["not_after"] > 0
' "$T/list.json"
# the certificate on the token is the one the RA issued
printf '%s\n' "$PIN" | "$P11ENROLL" --json --pin-stdin token objects --login \
    pkcs11:token=p11e-enroll >"$T/objs.json" 2>/dev/null
serial=$(python3 -c '
import json, sys
print([x for x in json.load(open(sys.argv[1]))["objects"] if x["kind"] == "certificate" and not x.get("authority")][0]["serial"])' "$T/objs.json")
tap_check "the RA has exactly that certificate" sh -c \
    "test \"\$(sqlite3 '$D/ra.db' \"SELECT count(*) FROM certificates WHERE upper(serial) = upper('$serial')\")\" = 1"
tap_check "the journal file is private (0600)" sh -c \
    "test \"\$(stat -c %a '$XDG_STATE_HOME'/p11enroll/credentials/*.json)\" = 600"
tap_check "status lists the credential" sh -c \
    "'$P11ENROLL' status | grep -q 'INSTALLED'"

# --- a wrong password ---
new_token p11e-badpw || tap_bail "cannot create a token"
new_user S0002 || tap_bail "user add failed"
printf '%s\n%s\n%s\n' "$PIN" "Wrong-Password-1" "$(otp S0002)" |
    "$P11ENROLL" enroll --invitation "$T/S0002.inv" \
    --token pkcs11:token=p11e-badpw --secrets-stdin >"$T/out" 2>"$T/err"
rc=$?
cat "$T/out" "$T/err" >&2
tap_check "a wrong password fails" test $rc != 0
tap_check "with a message naming what to check" \
    grep -q 'password or one-time password is wrong' "$T/err"
tap_check "and how to go on with the same key" grep -q 'enroll --resume c-' "$T/err"
tap_check "the token holds the generated key and no certificate" sh -c \
    "test $(count pkcs11:token=p11e-badpw private-key) = 1 && test $(count pkcs11:token=p11e-badpw certificate) = 0"
"$P11ENROLL" --json list >"$T/list.json" 2>&1
tap_check "the journal says KEY_READY and AuthFailed" python3 -c '
import json, sys
c = [x for x in json.load(open(sys.argv[1]))["credentials"] if x["user_id"] == "S0002"]
assert len(c) == 1 and c[0]["state"] == "KEY_READY", c
assert c[0]["last_error"]["name"] == "AuthFailed", c
' "$T/list.json"
# the right password next, with --resume alone (the record knows the
# token, contract and user): the same key is used, no second one
cred=$(python3 -c '
import json, sys
print([x for x in json.load(open(sys.argv[1]))["credentials"] if x["user_id"] == "S0002"][0]["credential"])' "$T/list.json")
printf '%s\n%s\n%s\n' "$PIN" "$PW" "$(otp S0002 30)" |
    "$P11ENROLL" enroll --resume "$cred" --secrets-stdin >"$T/out" 2>&1
rc=$?
cat "$T/out" >&2
tap_check "enroll --resume with the right password uses the same key" sh -c \
    "test $rc = 0 && grep -q 'enrolled: $cred' '$T/out' && test $(count pkcs11:token=p11e-badpw private-key) = 1 && test $(count pkcs11:token=p11e-badpw certificate) = 1"

# --- kill -9 at each crash point, then a re-run ---
k=0
for cp in $CRASHPOINTS; do
	k=$((k + 1))
	u=K000$k
	tok=p11e-crash-$k
	new_token $tok || tap_bail "cannot create a token"
	new_user $u || tap_bail "user add failed"
	# a fresh agent that inherits the crash point
	agent_stop
	enroll $u $tok P11ENROLL_CRASHPOINT=$cp >"$T/out" 2>&1
	rc=$?
	cat "$T/out" >&2
	tap_check "$cp: the agent dies there (the command fails)" test $rc != 0
	agent_stop
	# the session of the first run may have used this step's code
	E_OTP_LATER=1 enroll $u $tok >"$T/out" 2>&1
	rc=$?
	cat "$T/out" >&2
	tap_check "$cp: a re-run finishes the enrollment" test $rc = 0
	tap_check "$cp: exactly one key pair on the token" sh -c \
	    "test $(count pkcs11:token=$tok private-key) = 1 && test $(count pkcs11:token=$tok public-key) = 1"
	tap_check "$cp: exactly one certificate, and one issued by the RA" sh -c \
	    "test $(count pkcs11:token=$tok certificate) = 1 && test \"\$(sqlite3 '$D/ra.db' \"SELECT count(*) FROM certificates c JOIN users u ON c.user = u.id WHERE u.user_id = '$u'\")\" = 1"
done

# --- bad trust: another server key pinned ---
python3 - "$T/S0001.inv" "$T/bad.inv" <<'EOF'
import json, sys
i = json.load(open(sys.argv[1]))
i["server_pin"] = "sha256//" + "A" * 43 + "="
json.dump(i, open(sys.argv[2], "w"))
EOF
new_token p11e-trust || tap_bail "cannot create a token"
printf '%s\n%s\n%s\n' "$PIN" "$PW" "$(otp S0001)" |
    "$P11ENROLL" enroll --invitation "$T/bad.inv" --service badpin \
    --token pkcs11:token=p11e-trust --secrets-stdin >"$T/out" 2>&1
rc=$?
cat "$T/out" >&2
tap_check "a server key that is not the pinned one is refused" sh -c \
    "test $rc != 0 && grep -q 'not trusted' '$T/out'"

# --- the window is used: a second enrollment of S0001 ---
new_token p11e-again || tap_bail "cannot create a token"
printf '%s\n%s\n%s\n' "$PIN" "$PW" "$(otp S0001 30)" |
    "$P11ENROLL" enroll --invitation "$T/S0001.inv" \
    --token pkcs11:token=p11e-again --secrets-stdin >"$T/out" 2>&1
rc=$?
cat "$T/out" >&2
tap_check "without an open window: the message says to ask for a reissue" \
    sh -c "test $rc != 0 && grep -q 'acquisition window has expired: ask your administrator to reissue' '$T/out'"
tap_check "and nothing but the key is on that token" sh -c \
    "test $(count pkcs11:token=p11e-again private-key) = 1 && test $(count pkcs11:token=p11e-again certificate) = 0"

# --- no invitation: the server key confirmed by fingerprint ---
expected=$(openssl x509 -in "$D/tls.crt" -noout -pubkey |
    openssl pkey -pubin -outform DER | openssl dgst -sha256 -binary |
    openssl base64)
"$P11ENROLL" service add manual "https://127.0.0.1:$PORT" >"$T/out" 2>&1
rc=$?
cat "$T/out" >&2
tap_check "a server the system does not trust is refused, with its key" \
    sh -c "test $rc != 0 && grep -q 'Its key is sha256//$expected' '$T/out'"
tap_check "and the service was not added" sh -c \
    "! '$P11ENROLL' status | grep -q manual"
tap_check "--trust-fingerprint with the compared key adds it" \
    "$P11ENROLL" service add manual "https://127.0.0.1:$PORT" \
    --trust-fingerprint "sha256//$expected"
new_token p11e-manual || tap_bail "cannot create a token"
new_user S0003 || tap_bail "user add failed"
printf '%s\n%s\n%s\n' "$PIN" "$PW" "$(otp S0003)" |
    "$P11ENROLL" enroll --service manual --contract-id "$C" --user-id S0003 \
    --token pkcs11:token=p11e-manual --secrets-stdin >"$T/out" 2>&1
rc=$?
cat "$T/out" >&2
tap_check "enroll --service with that service succeeds" sh -c \
    "test $rc = 0 && test $(count pkcs11:token=p11e-manual certificate) = 1"

# --- no secret anywhere ---
tap_check "the canary PIN is in no state file or log" sh -c \
    "! grep -r -q -- '$PIN' '$XDG_STATE_HOME' '$XDG_RUNTIME_DIR/p11enroll/agent.log' '$T/ra.log'"
tap_check "nor the canary password" sh -c \
    "! grep -r -q -- '$PW' '$XDG_STATE_HOME' '$XDG_RUNTIME_DIR/p11enroll/agent.log' '$T/ra.log'"

tap_done
