#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# p11enroll-ra user import: a batch of users from a file, each with a
# generated initial password, an acquisition window, an invitation file
# and (--otp) a TOTP secret; one imported user then opens a session on
# the server with that password and a code of that secret.  Every bad
# file or clash is refused as FILE:LINE or by name with the database and
# the invitation directory unchanged; no password in the database.

. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/ra.sh"
. "$top_srcdir/tests/lib/ra-serve.sh"

for c in sqlite3 oathtool python3 curl; do
	command -v $c >/dev/null 2>&1 || tap_skip_all "$c not installed"
done

tap_plan 16
tap_tmpdir T
rs_init
mkdir "$T/inv"

cat >"$T/users.csv" <<'EOF2'
# 利用者ID,利用者名[,admin]
S1001,しんきん 太郎
S1002,しんきん 花子

A1001,管理 一郎,admin
EOF2
"$RA" user import "$C" "$T/users.csv" --invitations "$T/inv" --otp --json \
    >"$T/import.json" 2>"$T/import.err"
rc=$?
tap_check "import of three users: exit 0" [ "$rc" = 0 ]
# field USER KEY
field()
{
	python3 -c 'import json, sys
u = [x for x in json.load(open(sys.argv[1]))["users"] if x["user_id"] == sys.argv[2]][0]
print(u.get(sys.argv[3], ""))' "$T/import.json" "$1" "$2"
}
tap_check "... the users, names and roles in the database" [ \
    "$(sqlite3 "$D/ra.db" "SELECT user_id, name, role FROM users ORDER BY user_id" | tr '\n' ' ')" = \
    "A1001|管理 一郎|admin S1001|しんきん 太郎|user S1002|しんきん 花子|user " ]
tap_check "... each with an open initial acquisition window" [ \
    "$(sqlite3 "$D/ra.db" "SELECT count(*) FROM windows WHERE state = 'open' AND reason = 'initial'")" = 3 ]
tap_check "... and a TOTP token" [ \
    "$(sqlite3 "$D/ra.db" "SELECT count(*) FROM otp_tokens")" = 3 ]
tap_check "initial passwords: 12 characters without look-alikes, all different" sh -c \
    "python3 -c 'import json,sys,re; p=[u[\"initial_password\"] for u in json.load(open(sys.argv[1]))[\"users\"]]; assert len(set(p))==3 and all(re.fullmatch(\"[A-HJ-NP-Za-km-np-z2-9]{12}\", x) for x in p)' '$T/import.json'"
tap_check "an invitation per user with contract, user, role and server pin" sh -c \
    "python3 -c 'import json,sys; i=json.load(open(sys.argv[1])); assert i[\"contract_id\"]==\"$C\" and i[\"user_id\"]==\"A1001\" and i[\"role\"]==\"admin\" and i[\"server_pin\"].startswith(\"sha256//\")' '$T/inv/A1001.json'"
tap_check "no initial password in the database or its audit" sh -c \
    "! sqlite3 '$D/ra.db' .dump | grep -qF '$(field S1001 initial_password)'"

# the imported user logs in with its password and a code of its secret
rs_start || tap_bail "serve did not start"
secret=$(field S1001 otpauth_uri | sed -n 's/.*[?&]secret=\([A-Z2-7]*\).*/\1/p')
printf '{"contract_id":"%s","user_id":"S1001","password":"%s","otp":"%s"}' \
    "$C" "$(field S1001 initial_password)" "$(oathtool --totp -b "$secret")" \
    >"$T/sess.json"
rs_req POST /api/v1/enrollment/session -H 'Content-Type: application/json' \
    --data-binary @"$T/sess.json"
rm -f "$T/sess.json"
tap_check "S1001 opens an enrollment session with them (200)" [ "$code" = 200 ]
rs_stop

# text output: the table to hand out
printf 'S2001,山田 次郎\n' >"$T/one.csv"
"$RA" user import "$C" "$T/one.csv" >"$T/import.txt" 2>&1
tap_check "text output: the user, its initial password and the window" sh -c \
    "grep -q '^1 users (利用者) of contract $C added' '$T/import.txt' && grep -Eq '^  S2001 +[A-Za-z2-9]{12}  山田 次郎$' '$T/import.txt'"

# bad input: nothing added, no invitation written
inv_before=$(ls "$T/inv" | tr '\n' ' ')
bad()
{
	printf "$2" >"$T/bad.csv"
	ra_unchanged "$1" "$D" "$RA" user import "$C" "$T/bad.csv" --invitations "$T/inv"
	tap_check "... says '$3', nothing added, no invitation written" sh -c \
	    "grep -qF -- '$3' '$T/out' && grep -q 'nothing was added' '$T/out' && [ \"\$(ls '$T/inv' | tr '\n' ' ')\" = '$inv_before' ]"
}
bad "an invalid user ID on line 2 refused" 'S3001,a\nS-3002,b\n' "bad.csv:2: invalid user ID"
bad "a user listed twice refused" 'S3001,a\nS3001,b\n' "bad.csv:2: user S3001 is listed twice"
bad "an existing user refused" 'S3001,a\nS1002,b\n' "user S1002 already exists in contract $C"
ra_unchanged "an unknown contract refused" "$D" "$RA" user import 99999999999 "$T/one.csv"
tap_done
