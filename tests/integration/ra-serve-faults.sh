#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# p11enroll-ra serve when the store fails or the server dies (issue 4 §5,
# research/security.md F5, F6, F15):
#  - a full store (SQLITE_FULL) and I/O errors answer 503 `unavailable`
#    with Retry-After and consume nothing; the server recovers without a
#    restart once space returns.  The faults come from the test-only VFS
#    of server/db.c (P11ENROLL_RA_TEST_FAULT names a file holding "full"
#    or "io"), since CI's container cannot mount a small filesystem.
#  - kill -9 before the issuance COMMIT (crash point ra-before-commit):
#    nothing issued, the token still serves, the retry issues once.
#  - kill -9 after the COMMIT, before the reply (ra-after-commit): the
#    byte-identical CSR gets the same certificate back; the database is
#    intact and holds one certificate for the window.

. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/ra.sh"
. "$top_srcdir/tests/lib/ra-serve.sh"

for c in sqlite3 oathtool python3 curl openssl; do
	command -v $c >/dev/null 2>&1 ||
	    tap_skip_all "$c not installed (Debian packages sqlite3, oathtool, python3, curl, openssl)"
done

tap_plan 33
tap_tmpdir T
rs_init
for u in F1 F2 K1 K2 R1; do
	rs_user $u
done

FAULT=$T/fault
export P11ENROLL_RA_TEST_FAULT=$FAULT
rs_start || tap_bail "the server did not start: $(cat "$T/serve.log")"

# rs_died: waits up to 10 s for the server to end; $rc its exit status
# (137 for SIGKILL), or "alive" (then it is stopped).
rs_died()
{
	i=0
	while kill -0 "$RS_PID" 2>/dev/null && [ "$i" -lt 200 ]; do
		sleep 0.05
		i=$((i + 1))
	done
	if kill -0 "$RS_PID" 2>/dev/null; then
		rs_stop
		rc=alive
	else
		wait "$RS_PID"
		rc=$?
	fi
}

# rs_count USER: certificates of USER
rs_count()
{
	sqlite3 "$D/ra.db" "SELECT count(*) FROM certificates c JOIN users u ON u.id = c.user WHERE u.user_id = '$1'"
}

rs_integrity()
{
	tap_check "$1" eval \
	    '[ "$(sqlite3 "$D/ra.db" "PRAGMA integrity_check")" = ok ]'
}

# ---- a full store, then I/O errors ----
rs_session F1
tap_check "F1 session before the disk fills" [ "$code" = 200 ]
TOKEN_F1=$TOKEN
rs_csr F1
before=$(rs_dump)
echo full >"$FAULT"
rs_enroll "$T/F1.csr" -H "Authorization: Bearer $TOKEN_F1"
rs_problem "simpleenroll on a full store: 503 unavailable" 503 unavailable
tap_check "... with Retry-After" grep -qi '^Retry-After: [1-9]' "$T/hdr"
rs_same "... nothing consumed (token, window, no certificate)" "$before"
tap_check "the log names the full store" grep -q 'database or disk is full' \
    "$T/serve.log"
rs_session F2
rs_problem "a session on a full store: 503 unavailable" 503 unavailable
rs_same "... the OTP step and the failure counter unchanged" "$before"

echo io >"$FAULT"
rs_enroll "$T/F1.csr" -H "Authorization: Bearer $TOKEN_F1"
rs_problem "simpleenroll on failing I/O: 503 unavailable" 503 unavailable
tap_check "... with Retry-After" grep -qi '^Retry-After: [1-9]' "$T/hdr"
rs_same "... nothing consumed" "$before"

rm -f "$FAULT"
rs_enroll "$T/F1.csr" -H "Authorization: Bearer $TOKEN_F1"
tap_check "space back, same server: the same token and CSR issue (200)" \
    [ "$code" = 200 ]
tap_check "... one certificate for F1" eval '[ "$(rs_count F1)" = 1 ]'
rs_session F2 "$(rs_otp F2 30)"
tap_check "... and a session works again" [ "$code" = 200 ]
rs_integrity "the database is intact (integrity_check ok)"
tap_check "the server kept running" kill -0 "$RS_PID"

# ---- F5: killed before the COMMIT ----
rs_session K1
TOKEN_K1=$TOKEN
rs_csr K1
before=$(rs_dump)
rs_stop
unset P11ENROLL_RA_TEST_FAULT
export P11ENROLL_CRASHPOINT=ra-before-commit
rs_start || tap_bail "restart failed"
unset P11ENROLL_CRASHPOINT
rs_enroll "$T/K1.csr" -H "Authorization: Bearer $TOKEN_K1"
rs_died
tap_check "killed before COMMIT: no answer, the server died of SIGKILL" \
    sh -c "[ '$code' = 000 ] && [ '$rc' = 137 ]"
rs_same "nothing was issued or consumed" "$before"
rs_integrity "integrity_check ok after the kill"
rs_start || tap_bail "restart failed"
rs_enroll "$T/K1.csr" -H "Authorization: Bearer $TOKEN_K1"
tap_check "after a restart the same token issues" [ "$code" = 200 ]
rs_cert "$T/K1.pem"
tap_check "... once (one certificate, window used, token used)" eval \
    '[ "$(rs_count K1)" = 1 ] && [ "$(sqlite3 "$D/ra.db" "SELECT w.state, e.used IS NOT NULL FROM windows w JOIN users u ON u.id = w.user JOIN enroll_codes e ON e.window = w.id WHERE u.user_id = '"'K1'"'")" = "used|1" ]'
rs_enroll "$T/K1.csr" -H "Authorization: Bearer $TOKEN_K1"
rs_cert "$T/K1b.pem"
tap_check "a second retry: the same certificate, no second one" sh -c \
    "cmp -s '$T/K1.pem' '$T/K1b.pem' && [ \"\$(sqlite3 '$D/ra.db' \"SELECT count(*) FROM certificates c JOIN users u ON u.id = c.user WHERE u.user_id = 'K1'\")\" = 1 ]"

# ---- F6: killed after the COMMIT, before the reply ----
rs_session K2
TOKEN_K2=$TOKEN
tap_check "K2 session" [ -n "$TOKEN_K2" ]
rs_csr K2
rs_stop
export P11ENROLL_CRASHPOINT=ra-after-commit
rs_start || tap_bail "restart failed"
unset P11ENROLL_CRASHPOINT
rs_enroll "$T/K2.csr" -H "Authorization: Bearer $TOKEN_K2"
rs_died
tap_check "killed after COMMIT: no answer, the server died of SIGKILL" \
    sh -c "[ '$code' = 000 ] && [ '$rc' = 137 ]"
k2_serial=$(sqlite3 "$D/ra.db" "SELECT serial FROM certificates c JOIN users u ON u.id = c.user WHERE u.user_id = 'K2'")
tap_check "the certificate was committed" [ -n "$k2_serial" ]
rs_integrity "integrity_check ok after the kill"
rs_start || tap_bail "restart failed"
rs_enroll "$T/K2.csr"
rs_cert "$T/K2.pem"
tap_check "the byte-identical CSR, no credential: the same certificate (serial)" \
    sh -c "[ -n '$k2_serial' ] && [ \"\$(openssl x509 -in '$T/K2.pem' -noout -serial | cut -d= -f2)\" = '$k2_serial' ]"
rs_enroll "$T/K2.csr" -H "Authorization: Bearer $TOKEN_K2"
rs_cert "$T/K2b.pem"
tap_check "... also with the used token" cmp -s "$T/K2.pem" "$T/K2b.pem"
tap_check "one certificate for K2's window" eval '[ "$(rs_count K2)" = 1 ]'
tap_check "at most one certificate per window in the whole database" eval \
    '[ "$(sqlite3 "$D/ra.db" "SELECT count(*) FROM (SELECT e.window FROM enroll_codes e JOIN certificates c ON c.spki_sha256 = e.spki_sha256 GROUP BY e.window HAVING count(*) > 1)")" = 0 ]'

# ---- re-enrollment keeps the role (an admin renews only as an admin) ----
printf '[policy]\nrenew-before = 400d\n' >"$D/ra.conf.d/renew.conf"
rs_stop
rs_start || tap_bail "restart failed"
rs_session R1 "$(rs_otp R1 30)"
[ "$code" = 200 ] || rs_session R1
rs_csr R1
rs_enroll "$T/R1.csr" -H "Authorization: Bearer $TOKEN"
rs_cert "$T/R1.pem"
subj="/O=しんきん商事/OU=$C/CN=R1"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$T/R1r.key" -utf8 -subj "$subj" -outform DER 2>/dev/null |
    base64 >"$T/R1r.csr"
# the user becomes an administrator behind the certificate's back
sqlite3 "$D/ra.db" "UPDATE users SET role = 'admin' WHERE user_id = 'R1'"
before=$(rs_dump)
rs_req POST /.well-known/est/simplereenroll -H 'Content-Type: application/pkcs10' \
    --data-binary @"$T/R1r.csr" --cert "$T/R1.pem" --key "$T/R1.key"
rs_problem "a user's certificate does not renew into an admin's: 403 certificate-revoked" \
    403 certificate-revoked
rs_same "... nothing changed" "$before"
tap_check "... audited as a role mismatch" sh -c \
    "sqlite3 '$D/ra.db' \"SELECT detail FROM audit WHERE action = 'simplereenroll' AND result = 'refused'\" | grep -q 'role'"
sqlite3 "$D/ra.db" "UPDATE users SET role = 'user' WHERE user_id = 'R1'"
rs_req POST /.well-known/est/simplereenroll -H 'Content-Type: application/pkcs10' \
    --data-binary @"$T/R1r.csr" --cert "$T/R1.pem" --key "$T/R1.key"
tap_check "with the role back, it renews (200)" [ "$code" = 200 ]
rs_stop
tap_done
