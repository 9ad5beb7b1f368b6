#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# The back-office commands of p11enroll-ra: contract add, user add,
# otp assign/check (codes from oathtool), admin-code, cert revoke, crl,
# unlock, list, audit; every bad input refused with the database
# unchanged; no secret in the audit table.

. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/ra.sh"

for c in sqlite3 oathtool python3; do
	command -v $c >/dev/null 2>&1 ||
	    tap_skip_all "$c not installed (Debian packages sqlite3, oathtool, python3)"
done

tap_plan 37
tap_tmpdir T
D=$T/ra
export P11ENROLL_RA_DIR=$D
PW='Canary-Passw0rd-7f3a91'

"$RA" init "$D" >/dev/null || tap_bail "init failed"

# contract add
"$RA" contract add --name "しんきん商事" --json >"$T/contract.json" 2>&1
C=$(ra_json_get contract_id <"$T/contract.json")
PIN=$(ra_json_get contract_pin <"$T/contract.json")
CPIN=$(ra_json_get confirmation_pin <"$T/contract.json")
tap_check "contract add prints an 11-digit contract ID" \
    sh -c "printf '%s' '$C' | grep -Eqx '[0-9]{11}'"
tap_check "and two 8-digit PINs" \
    sh -c "printf '%s\n%s\n' '$PIN' '$CPIN' | grep -Ecx '[0-9]{8}' | grep -qx 2"
tap_check "and a customer card of 35 kana cells with 2 digits" sh -c \
    "python3 -c 'import json,sys; c=json.load(open(sys.argv[1]))[\"card\"]; assert len(c)==35 and all(len(v)==2 and v.isdigit() for v in c.values()) and \"オ\" in c' '$T/contract.json'"
tap_check "PINs are stored only as Argon2id hashes" sh -c \
    "sqlite3 '$D/ra.db' 'SELECT pin_hash, confirm_pin_hash FROM contracts' | grep -q '^\\\$argon2id\\\$v=19\\\$m=19456,t=2,p=1\\\$'"
tap_check "text output shows the card grid" sh -c \
    "'$RA' contract add --name Other | grep -q 'ア [0-9][0-9]   イ [0-9][0-9]'"

# user add
tap_check "user add with --password-stdin and an invitation file" sh -c \
    "printf '%s\n' '$PW' | '$RA' user add '$C' S0001 --name '山田太郎' --password-stdin --invitation '$T/inv.json' >'$T/useradd.out'"
tap_check "the invitation names URL, pin, contract and user" sh -c \
    "python3 -c 'import json,sys; i=json.load(open(sys.argv[1])); assert i[\"contract_id\"]==\"$C\" and i[\"user_id\"]==\"S0001\" and i[\"url\"].startswith(\"https://\") and i[\"server_pin\"].startswith(\"sha256//\")' '$T/inv.json'"
pin_expected=$(openssl x509 -in "$D/tls.crt" -noout -pubkey |
    openssl pkey -pubin -outform DER | openssl dgst -sha256 -binary |
    openssl base64)
tap_check "the server pin is the TLS key's SHA-256 (curl --pinnedpubkey)" \
    sh -c "grep -q 'sha256//$pin_expected' '$T/inv.json'"
tap_check "an acquisition window of 14 days is open" sh -c \
    "test \"\$(sqlite3 '$D/ra.db' \"SELECT closes - opened, state, reason FROM windows\")\" = '1209600|open|initial'"
printf '%s\n' "$PW" | "$RA" user add "$C" A0001 --admin --name Admin \
    --password-stdin >/dev/null 2>&1

# bad input: each refused, the database byte for byte the same
ra_unchanged "contract ID of 10 digits refused" "$D" \
    sh -c "echo pw12345678 | '$RA' user add 0123456789 S0002 --name X --password-stdin"
tap_check "with a clear message" grep -q "exactly 11 half-width digits" "$T/out"
ra_unchanged "contract ID of 12 digits refused" "$D" \
    sh -c "echo pw12345678 | '$RA' user add 012345678901 S0002 --name X --password-stdin"
ra_unchanged "full-width contract ID refused" "$D" \
    sh -c "echo pw12345678 | '$RA' user add ０１２３４５６７８９０ S0002 --name X --password-stdin"
ra_unchanged "user ID with SQL meta-characters refused" "$D" \
    sh -c "echo pw12345678 | '$RA' user add '$C' \"S1'--\" --name X --password-stdin"
tap_check "with a clear message" grep -q "1 to 30 half-width letters and digits" "$T/out"
ra_unchanged "user ID of 31 characters refused" "$D" \
    sh -c "echo pw12345678 | '$RA' user add '$C' abcdefghijabcdefghijabcdefghijk --name X --password-stdin"
ra_unchanged "unknown contract refused" "$D" \
    sh -c "echo pw12345678 | '$RA' user add 99999999999 S0002 --name X --password-stdin"
tap_check "with a clear message" grep -q "unknown contract 99999999999" "$T/out"
ra_unchanged "duplicate user refused" "$D" \
    sh -c "echo pw12345678 | '$RA' user add '$C' S0001 --name X --password-stdin"
tap_check "with a clear message" grep -q "already exists" "$T/out"
ra_unchanged "short password refused" "$D" \
    sh -c "echo short | '$RA' user add '$C' S0003 --name X --password-stdin"
ra_unchanged "otp assign for an unknown user refused" "$D" \
    "$RA" otp assign "$C" S0009
ra_unchanged "admin-code for a non-administrator refused" "$D" \
    "$RA" admin-code "$C" S0001
ra_unchanged "revoking an unknown serial refused" "$D" \
    "$RA" cert revoke 0123ABCD

# otp assign; a code from oathtool checks once
"$RA" otp assign "$C" S0001 --json >"$T/otp.json"
URI=$(ra_json_get otpauth_uri <"$T/otp.json")
SECRET=$(printf '%s' "$URI" | sed -n 's/.*[?&]secret=\([A-Z2-7]*\).*/\1/p')
tap_check "otp assign shows an otpauth URI with a 160-bit secret" \
    test "${#SECRET}" = 32
tap_check "the secret is stored sealed, not in clear" sh -c \
    "! sqlite3 '$D/ra.db' .dump | grep -q '$SECRET'"
code=$(oathtool --totp -b "$SECRET")
tap_check "oathtool's current code is accepted" sh -c \
    "echo $code | '$RA' otp check --stdin '$C' S0001"
step=$(sqlite3 "$D/ra.db" "SELECT last_used_step FROM otp_tokens")
tap_check "the same code again is a replay, the step unchanged" sh -c \
    "! echo $code | '$RA' otp check --stdin '$C' S0001 2>'$T/replay' && grep -q 'already used' '$T/replay' && test \"\$(sqlite3 '$D/ra.db' 'SELECT last_used_step FROM otp_tokens')\" = '$step'"
far=$(oathtool --totp -b -N "now + 90 seconds" "$SECRET")
tap_check "a code 3 steps ahead is refused" sh -c \
    "! echo $far | '$RA' otp check --stdin '$C' S0001"

# admin-code
tap_check "admin-code for an administrator" sh -c \
    "'$RA' admin-code '$C' A0001 --json >'$T/code.json'"
ACODE=$(ra_json_get code <"$T/code.json")
tap_check "only its SHA-256 is stored" sh -c \
    "test \"\$(sqlite3 '$D/ra.db' \"SELECT lower(hex(hash)) FROM enroll_codes\")\" = \"\$(printf '%s' '$ACODE' | sha256sum | cut -d' ' -f1)\""

# revoke and CRL: a certificate row as the issuance would write it
sqlite3 "$D/ra.db" "INSERT INTO certificates (serial, user, issue_no, der,
    csr_sha256, spki_sha256, not_before, not_after, key_type, created)
    VALUES ('5A0102030405060708090A0B0C0D0E0F', 1, 1, x'00', zeroblob(32),
    zeroblob(32), strftime('%s','now'), strftime('%s','now') + 86400,
    'ec-p256', strftime('%s','now'))"
tap_check "cert revoke with a reason" \
    "$RA" cert revoke 5a:01:02:03:04:05:06:07:08:09:0a:0b:0c:0d:0e:0f --reason keyCompromise
tap_check "the CRL lists the serial with its reason" sh -c \
    "'$RA' crl | openssl crl -noout -text | tr -d ' ' | grep -A6 'SerialNumber:5A0102030405060708090A0B0C0D0E0F' | grep -q KeyCompromise"

# unlock, list, audit
sqlite3 "$D/ra.db" "UPDATE users SET failures = 5, locked = 1 WHERE user_id = 'S0001'"
tap_check "unlock resets the counter and the lock" sh -c \
    "'$RA' unlock '$C' S0001 && test \"\$(sqlite3 '$D/ra.db' \"SELECT failures, locked FROM users WHERE user_id = 'S0001'\")\" = '0|0'"
tap_check "list shows the contract, users, certificate and window" sh -c \
    "'$RA' list --json | python3 -c 'import json,sys; l=json.load(sys.stdin); assert len(l[\"users\"])==2 and l[\"certificates\"][0][\"status\"]==\"revoked\" and l[\"windows\"]'"
audit_ok=yes
"$RA" audit >"$T/audit"
for a in init contract-add user-add otp-assign otp-check admin-code \
    cert-revoke unlock; do
	grep -q "action=$a " "$T/audit" || audit_ok="no ($a missing)"
done
tap_check "audit shows every action" test "$audit_ok" = yes
tap_check "no secret in the database, audit or output of audit" sh -c \
    "! { sqlite3 '$D/ra.db' .dump; '$RA' audit --json; } | grep -q -e '$PW' -e '$PIN' -e '$CPIN' -e '$SECRET' -e '$ACODE' -e '$code'"
tap_done
