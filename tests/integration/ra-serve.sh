#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# p11enroll-ra serve over real HTTPS on 127.0.0.1: every endpoint's
# success path (cacerts, csrattrs, policy, crl, the user session,
# simpleenroll with a token and with an admin code, simplereenroll), the
# re-delivery of a lost response (also through tests/tools/lossy-proxy),
# re-enrollment refusals, a clean stop, and no secret in the database or
# the log.

. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/ra.sh"
. "$top_srcdir/tests/lib/ra-serve.sh"

for c in sqlite3 oathtool python3 curl openssl; do
	command -v $c >/dev/null 2>&1 ||
	    tap_skip_all "$c not installed (Debian packages sqlite3, oathtool, python3, curl, openssl)"
done

tap_plan 57
tap_tmpdir T
rs_init
rs_user S0001
rs_user S0002
rs_user A0001 --admin

rs_start || tap_bail "the server did not start: $(cat "$T/serve.log")"
tap_ok "serve writes its port to --port-file"

# cacerts, csrattrs, policy, crl
rs_req GET /.well-known/est/cacerts
tap_check "cacerts: 200 application/pkcs7-mime" sh -c \
    "[ '$code' = 200 ] && grep -qi '^Content-Type: application/pkcs7-mime' '$T/hdr'"
base64 -d "$T/body" | openssl pkcs7 -inform DER -print_certs 2>/dev/null |
    openssl x509 -out "$T/cacert.pem" 2>/dev/null
tap_check "cacerts: a certs-only PKCS#7 holding the issuing CA" \
    cmp "$T/cacert.pem" "$D/ca.crt"
rs_req GET /.well-known/est/csrattrs
tap_check "csrattrs: 200 application/csrattrs" sh -c \
    "[ '$code' = 200 ] && grep -qi '^Content-Type: application/csrattrs' '$T/hdr'"
base64 -d "$T/body" | openssl asn1parse -inform DER >"$T/attrs.txt" 2>&1
tap_check "csrattrs: ecPublicKey with P-256 and P-384, rsaEncryption" sh -c \
    "grep -q id-ecPublicKey '$T/attrs.txt' && grep -q prime256v1 '$T/attrs.txt' && grep -q secp384r1 '$T/attrs.txt' && grep -q rsaEncryption '$T/attrs.txt'"
rs_req GET /api/v1/policy
tap_check "policy: validity 366 d, renew 30 d, window 14 d, key policy" \
    python3 -c "import json; p=json.load(open('$T/body')); assert p['validity']==31622400 and p['renew_before']==2592000 and p['window']==1209600 and p['otp_step']==30 and 'ec-p256' in p['key_policy'], p"
rs_req GET /crl
tap_check "crl: 200 application/pkix-crl, signed by the CA" sh -c \
    "[ '$code' = 200 ] && grep -qi '^Content-Type: application/pkix-crl' '$T/hdr' && openssl crl -inform DER -in '$T/body' -CAfile '$D/ca.crt' -noout 2>&1 | grep -q 'verify OK'"

# the user session
before_session=$(date +%s)
rs_session S0001
tap_check "session: 200 with a token" [ "$code" = 200 ]
tap_check "the token is 32 random bytes in base64url (43 characters)" sh -c \
    "printf '%s' '$TOKEN' | grep -Eqx '[A-Za-z0-9_-]{43}'"
tap_check "session: subject, key policy, expiry >= 10 min, window" \
    python3 -c "
import json, datetime
b = json.load(open('$T/body'))
assert b['subject'] == '/O=しんきん商事/OU=$C/CN=S0001', b['subject']
assert b['key_policy'][0] == 'ec-p256'
e = datetime.datetime.strptime(b['expires'], '%Y-%m-%dT%H:%M:%SZ').replace(tzinfo=datetime.timezone.utc).timestamp()
assert e >= $before_session + 600, e
assert b['window_closes'].endswith('Z')
assert set(b) == {'token', 'expires', 'subject', 'key_policy', 'window_closes'}"
tap_check "the token is stored only as its SHA-256" sh -c "
    h=\$(printf '%s' '$TOKEN' | openssl dgst -sha256 -r | cut -c1-64 | tr a-f A-F)
    [ \"\$(sqlite3 '$D/ra.db' \"SELECT count(*) FROM enroll_codes WHERE kind = 'token' AND hex(hash) = '\$h'\")\" = 1 ] &&
    ! sqlite3 '$D/ra.db' .dump | grep -q '$TOKEN'"
tap_check "the OTP step is stored (last_used_step)" sh -c \
    "[ \"\$(sqlite3 '$D/ra.db' \"SELECT last_used_step >= 0 FROM otp_tokens o JOIN users u ON u.id = o.user WHERE u.user_id = 'S0001'\")\" = 1 ]"

# simpleenroll with the token
rs_csr S0001
rs_enroll "$T/S0001.csr" -H "Authorization: Bearer $TOKEN"
tap_check "simpleenroll: 200 application/pkcs7-mime; smime-type=certs-only" sh -c \
    "[ '$code' = 200 ] && grep -qi '^Content-Type: application/pkcs7-mime; smime-type=certs-only' '$T/hdr'"
rs_cert "$T/S0001.pem"
cp "$T/body" "$T/S0001.reply"
tap_check "the certificate verifies against the CA for clientAuth" sh -c \
    "openssl verify -CAfile '$D/ca.crt' -purpose sslclient '$T/S0001.pem' | grep -q OK"
tap_check "its subject comes from the database (O, OU contract, CN user)" sh -c \
    "openssl x509 -in '$T/S0001.pem' -noout -subject -nameopt RFC2253,-esc_msb | grep -qx 'subject=CN=S0001,OU=$C,O=しんきん商事'"
tap_check "it is for the CSR's key" sh -c \
    "[ \"\$(openssl x509 -in '$T/S0001.pem' -noout -pubkey)\" = \"\$(openssl pkey -in '$T/S0001.key' -pubout)\" ]"
tap_check "validity 366 days, notBefore backdated 5 minutes" python3 -c "
import subprocess, datetime
def t(opt):
    s = subprocess.check_output(['openssl', 'x509', '-in', '$T/S0001.pem', '-noout', opt]).decode().split('=', 1)[1].strip()
    return datetime.datetime.strptime(s, '%b %d %H:%M:%S %Y %Z').replace(tzinfo=datetime.timezone.utc).timestamp()
nb, na = t('-startdate'), t('-enddate')
assert na - nb == 366 * 86400, na - nb
assert 295 <= $before_session - nb + 5 <= 400, $before_session - nb"
tap_check "CA:FALSE, clientAuth only" sh -c \
    "openssl x509 -in '$T/S0001.pem' -noout -ext basicConstraints,extendedKeyUsage | tr -d ' ' | grep -q 'CA:FALSE' && openssl x509 -in '$T/S0001.pem' -noout -ext extendedKeyUsage | grep -q 'TLS Web Client Authentication'"
serial1=$(openssl x509 -in "$T/S0001.pem" -noout -serial | cut -d= -f2)
tap_check "stored: issue 1, issued from 127.0.0.1, ec-p256, CSR and key hashes" sh -c \
    "[ \"\$(sqlite3 '$D/ra.db' \"SELECT issue_no, issued_from, key_type, status, length(csr_sha256), length(spki_sha256) FROM certificates WHERE serial = '$serial1'\")\" = '1|127.0.0.1|ec-p256|valid|32|32' ]"
tap_check "the window and the token are used" sh -c \
    "[ \"\$(sqlite3 '$D/ra.db' \"SELECT w.state, e.used IS NOT NULL FROM windows w JOIN users u ON u.id = w.user JOIN enroll_codes e ON e.window = w.id WHERE u.user_id = 'S0001' AND e.kind = 'token'\")\" = 'used|1' ]"
tap_check "the issuance is audited" sh -c \
    "sqlite3 '$D/ra.db' \"SELECT action, target, result, peer, detail FROM audit WHERE action = 'simpleenroll'\" | grep -q '^simpleenroll|$C/S0001|ok|127.0.0.1|serial $serial1'"

# re-delivery (R17)
before=$(rs_dump)
rs_enroll "$T/S0001.csr"
rs_cert "$T/again.pem"
tap_check "the same CSR again, without credentials: the same certificate" \
    cmp "$T/again.pem" "$T/S0001.pem"
rs_enroll "$T/S0001.csr" -H "Authorization: Bearer $TOKEN"
rs_cert "$T/again.pem"
tap_check "... and with the used token" cmp "$T/again.pem" "$T/S0001.pem"
rs_csr S0001 same
rs_enroll "$T/S0001.csr" -H "Authorization: Bearer $TOKEN"
rs_cert "$T/again.pem"
tap_check "a new CSR for the same key with the used token: the same certificate" \
    cmp "$T/again.pem" "$T/S0001.pem"
rs_same "nothing new was issued" "$before"

# an administrator's first certificate with the one-time code (Basic)
"$RA" admin-code "$C" A0001 --json >"$T/code.json" 2>/dev/null
ACODE=$(ra_json_get code <"$T/code.json")
rs_csr A0001
rs_enroll "$T/A0001.csr"
tap_check "no credentials: 401 with WWW-Authenticate: Basic realm=\"p11enroll\"" sh -c \
    "[ '$code' = 401 ] && grep -q '^WWW-Authenticate: Basic realm=\"p11enroll\"' '$T/hdr'"
rs_enroll "$T/A0001.csr" -u "$C/A0001:$ACODE"
tap_check "Basic CONTRACT/USER with the admin code: 200" [ "$code" = 200 ]
rs_cert "$T/A0001.pem"
tap_check "the administrator's certificate has the database subject" sh -c \
    "openssl x509 -in '$T/A0001.pem' -noout -subject -nameopt RFC2253,-esc_msb | grep -qx 'subject=CN=A0001,OU=$C,O=しんきん商事'"
tap_check "the code is stored only as its SHA-256 and is now used" sh -c \
    "! sqlite3 '$D/ra.db' .dump | grep -q '$ACODE' && [ \"\$(sqlite3 '$D/ra.db' \"SELECT count(*) FROM enroll_codes WHERE kind = 'admin-code' AND used IS NOT NULL\")\" = 1 ]"

# simplereenroll: too early with the default policy
rs_csr S0001r
rs_req POST /.well-known/est/simplereenroll -H 'Content-Type: application/pkcs10' \
    --data-binary @"$T/S0001r.csr" --cert "$T/S0001.pem" --key "$T/S0001.key"
rs_problem "re-enrollment 366 days before expiry: 403 too-early" 403 too-early
tap_check "... saying from when" grep -Eq 're-enrollment opens at [0-9]{4}-[0-9]{2}-[0-9]{2}T' "$T/body"

# the same server with a re-enrollment window covering the whole lifetime
rs_stop
tap_check "SIGTERM stops the server cleanly (exit 0)" [ "$rs_rc" = 0 ]
printf '[policy]\nrenew-before = 400d\n' >"$D/ra.conf.d/renew.conf"
rs_start || tap_bail "restart failed"
# a subject copied from the current certificate, as RFC 7030 §4.2.2 wants
subj="/O=しんきん商事/OU=$C/CN=S0001"
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$T/S0001r.key" -utf8 -subj "$subj" -outform DER \
    -out "$T/S0001r.der" 2>/dev/null
base64 "$T/S0001r.der" >"$T/S0001r.csr"
rs_req POST /.well-known/est/simplereenroll -H 'Content-Type: application/pkcs10' \
    --data-binary @"$T/S0001r.csr" --cert "$T/S0001.pem" --key "$T/S0001.key"
tap_check "simplereenroll with the current certificate: 200" [ "$code" = 200 ]
rs_cert "$T/S0001r.pem"
serial2=$(openssl x509 -in "$T/S0001r.pem" -noout -serial | cut -d= -f2)
tap_check "the new certificate: same subject, new key, verifies" sh -c \
    "[ \"\$(openssl x509 -in '$T/S0001r.pem' -noout -subject)\" = \"\$(openssl x509 -in '$T/S0001.pem' -noout -subject)\" ] && [ '$serial1' != '$serial2' ] && openssl verify -CAfile '$D/ca.crt' -purpose sslclient '$T/S0001r.pem' >/dev/null"
tap_check "issue 2; the old certificate is superseded" sh -c \
    "[ \"\$(sqlite3 '$D/ra.db' \"SELECT group_concat(issue_no || status, ',') FROM (SELECT issue_no, status FROM certificates c JOIN users u ON u.id = c.user WHERE u.user_id = 'S0001' ORDER BY issue_no)\")\" = '1superseded,2valid' ]"

before=$(rs_dump)
rs_csr S0001x
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$T/S0001x.key" -utf8 -subj "$subj" -outform DER \
    -out "$T/S0001x.der" 2>/dev/null
base64 "$T/S0001x.der" >"$T/S0001x.csr"
rs_req POST /.well-known/est/simplereenroll -H 'Content-Type: application/pkcs10' \
    --data-binary @"$T/S0001x.csr" --cert "$T/S0001.pem" --key "$T/S0001.key"
rs_problem "the superseded certificate cannot renew again: 403 certificate-revoked" \
    403 certificate-revoked
rs_same "... nothing changed" "$before"
rs_req POST /.well-known/est/simplereenroll -H 'Content-Type: application/pkcs10' \
    --data-binary @"$T/S0001x.csr"
rs_problem "without a client certificate: 403 certificate-required" \
    403 certificate-required
# forged: a self-made CA with the issuing CA's name, same serial
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$T/fake-ca.key" -subj "$(openssl x509 -in "$D/ca.crt" -noout -subject -nameopt compat | sed 's/^subject=//')" \
    -days 30 -out "$T/fake-ca.pem" 2>/dev/null
openssl x509 -in "$T/S0001r.pem" -x509toreq -signkey "$T/S0001r.key" \
    -out "$T/forge.req" 2>/dev/null
openssl x509 -req -in "$T/forge.req" -CA "$T/fake-ca.pem" -CAkey "$T/fake-ca.key" \
    -set_serial "0x$serial2" -days 30 -out "$T/forged.pem" 2>/dev/null
rs_req POST /.well-known/est/simplereenroll -H 'Content-Type: application/pkcs10' \
    --data-binary @"$T/S0001x.csr" --cert "$T/forged.pem" --key "$T/S0001r.key"
rs_problem "a forged certificate with the issuer's name and a real serial: 403 certificate-required" \
    403 certificate-required
openssl req -new -key "$T/S0001x.key" -utf8 -subj "/O=Other/OU=$C/CN=S0001" \
    -outform DER 2>/dev/null | base64 >"$T/other.csr"
rs_req POST /.well-known/est/simplereenroll -H 'Content-Type: application/pkcs10' \
    --data-binary @"$T/other.csr" --cert "$T/S0001r.pem" --key "$T/S0001r.key"
rs_problem "another subject: 400 extension-not-allowed" 400 extension-not-allowed
rs_req POST /.well-known/est/simplereenroll -H 'Content-Type: application/pkcs10' \
    --data-binary @"$T/S0001x.csr" --cert "$T/S0001r.pem" --key "$T/S0001r.key"
tap_check "the current certificate renews" [ "$code" = 200 ]
rs_cert "$T/S0001x.pem"
serial3=$(openssl x509 -in "$T/S0001x.pem" -noout -serial | cut -d= -f2)
"$RA" cert revoke "$serial3" --reason keyCompromise >/dev/null 2>&1
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$T/S0001y.key" -utf8 -subj "$subj" -outform DER 2>/dev/null |
    base64 >"$T/S0001y.csr"
before=$(rs_dump)
rs_req POST /.well-known/est/simplereenroll -H 'Content-Type: application/pkcs10' \
    --data-binary @"$T/S0001y.csr" --cert "$T/S0001x.pem" --key "$T/S0001x.key"
rs_problem "a revoked certificate cannot renew: 403 certificate-revoked" \
    403 certificate-revoked
rs_same "... nothing changed" "$before"
rs_req GET /crl
tap_check "the revoked certificate is on /crl" sh -c \
    "openssl crl -inform DER -in '$T/body' -noout -text | grep -q '$serial3'"

# a lost response.  The proxy forwards bytes, so over TLS it cannot drop
# "the response" of a connection without dropping the handshake: it
# resets the connection once the client has received as many bytes as a
# bare TLS 1.2 handshake with this server takes (plus at most a 31-byte
# close_notify), so the request gets through and its answer does not.
proxy=$top_builddir/tests/tools/lossy-proxy
rs_session S0002
tap_check "S0002 session" [ "$code" = 200 ]
rs_csr S0002
start_proxy()
{
	rm -f "$T/proxy.port"
	"$proxy" --connect "127.0.0.1:$P" --port-file "$T/proxy.port" \
	    --log "$T/proxy.log" --max-connections 1 "$@" >/dev/null 2>&1 &
	proxy_pid=$!
	tap_at_exit "kill $proxy_pid"
	i=0
	while [ ! -s "$T/proxy.port" ] && [ "$i" -lt 200 ]; do
		sleep 0.05
		i=$((i + 1))
	done
	PP=$(cat "$T/proxy.port")
}
start_proxy
openssl s_client -tls1_2 -connect "127.0.0.1:$PP" -CAfile "$D/server-ca.crt" \
    </dev/null >/dev/null 2>&1
wait "$proxy_pid"
hs=$(sed -n 's/^conn 1: .*response bytes \([0-9]*\).*/\1/p' "$T/proxy.log")
tap_diag "a TLS 1.2 handshake with close_notify: $hs bytes from the server"
: >"$T/proxy.log"
start_proxy --reset-after "${hs:-1}"
curl -sS --noproxy '*' --max-time 20 --cacert "$D/server-ca.crt" --tlsv1.2 \
    --tls-max 1.2 -H 'Content-Type: application/pkcs10' \
    -H "Authorization: Bearer $TOKEN" --data-binary @"$T/S0002.csr" \
    -o "$T/lost" "https://127.0.0.1:$PP/.well-known/est/simpleenroll" \
    2>"$T/lost.err"
tap_check "through the proxy the response is lost" sh -c \
    "[ ! -s '$T/lost' ] && grep -q reset '$T/proxy.log'"
lost_serial=$(sqlite3 "$D/ra.db" "SELECT serial FROM certificates c JOIN users u ON u.id = c.user WHERE u.user_id = 'S0002'")
tap_check "but the certificate was issued and committed" [ -n "$lost_serial" ]
rs_enroll "$T/S0002.csr"
rs_cert "$T/S0002.pem"
tap_check "the retry with the same CSR gets that certificate (same serial)" sh -c \
    "[ -n '$lost_serial' ] && [ \"\$(openssl x509 -in '$T/S0002.pem' -noout -serial | cut -d= -f2)\" = '$lost_serial' ]"
tap_check "one certificate for S0002" sh -c \
    "[ \"\$(sqlite3 '$D/ra.db' \"SELECT count(*) FROM certificates c JOIN users u ON u.id = c.user WHERE u.user_id = 'S0002'\")\" = 1 ]"

# methods, media types, paths
rs_req PUT /.well-known/est/cacerts
tap_check "PUT cacerts: 405 with Allow: GET, HEAD" sh -c \
    "[ '$code' = 405 ] && grep -q '^Allow: GET, HEAD' '$T/hdr'"
rs_req GET /.well-known/est/simpleenroll
tap_check "GET simpleenroll: 405 with Allow: POST" sh -c \
    "[ '$code' = 405 ] && grep -q '^Allow: POST' '$T/hdr'"
rs_req GET /.well-known/est/nothing
rs_problem "an unknown path: 404" 404 not-found
rs_req GET /api/v1/policy --tls-max 1.1 --tlsv1.0
tap_check "TLS 1.1 is refused" [ "$code" = 000 ]

# the log: one line per request, never a secret
tap_check "one log line per request: method, path, status, peer, duration" \
    grep -Eq '^p11enroll-ra: POST /.well-known/est/simpleenroll 200 127\.0\.0\.1 [0-9.]+ ms$' "$T/serve.log"
tap_check "no password, token or code in the log" sh -c \
    "! grep -qe '$PW' -e '$TOKEN' -e '$ACODE' '$T/serve.log'"
tap_check "no password, token or code in the database" sh -c \
    "! sqlite3 '$D/ra.db' .dump | grep -qe '$PW' -e '$TOKEN' -e '$ACODE'"
rs_stop
tap_check "stopped cleanly again" [ "$rs_rc" = 0 ]
tap_done
