#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# The certificate p11enroll enroll put on the token logs in to a real
# relying party: nginx on 127.0.0.1 with the RA's own TLS certificate,
# ssl_verify_client against the RA's issuing CA and the RA's CRL.  The
# client is curl with the key on the token (pkcs11: URIs through libp11's
# engine on p11-kit-proxy; pin-value= is for tests only).  After
# p11enroll-ra cert revoke and a CRL refresh the same login is refused.
#
# The contract's name holds a '/': the session's subject escapes it and
# the CSR made on the token still has the one O the RA issues.  The RA
# allows one session at a time per address here (rate-burst 1): the
# agent waits out the 429's Retry-After instead of failing.

. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/softhsm.sh"
. "$top_srcdir/tests/lib/agent.sh"
. "$top_srcdir/tests/lib/ra.sh"
. "$top_srcdir/tests/lib/enroll.sh"
. "$top_srcdir/tests/lib/browser.sh"

for c in softhsm2-util oathtool python3 sqlite3 openssl curl; do
	command -v $c >/dev/null 2>&1 || tap_skip_all "$c not installed"
done
NGINX=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || tap_skip_all "nginx not installed (Debian package nginx-light)"
engine=$(openssl version -e 2>/dev/null | sed -n 's/^ENGINESDIR: "\(.*\)"/\1/p')/pkcs11.so
[ -r "$engine" ] ||
    tap_skip_all "libp11's engine not installed (Debian package libengine-pkcs11-openssl)"
"$RA" --help 2>/dev/null | grep -q '^  serve' ||
    tap_skip_all "p11enroll-ra serve not built"

tap_plan 12

tap_tmpdir T
agent_env "$T"
PIN='Pin-RelyingParty-3e9'
TOK=p11e-rp
softhsm_setup $TOK "$PIN" >&2 || tap_bail "cannot create a SoftHSM2 token"
# 30 a minute, one at a time: a second session within 2 s gets a 429
CONTRACT='Bank/Shinkin 商事'
en_ra_start "$CONTRACT" "rate-limit = 30" "rate-burst = 1" ||
    { cat "$T/ra.log" >&2; tap_bail "p11enroll-ra serve did not start"; }
en_user S0001 || tap_bail "user add failed"

# --- the burst is used by someone else from this address: a 429
printf '{"contract_id":"%s","user_id":"nobody","password":"x","otp":"000000"}' \
    "$C" >"$T/sess.json"
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$D/server-ca.crt" \
    -H 'Content-Type: application/json' --data-binary @"$T/sess.json" \
    "$URL/api/v1/enrollment/session")
tap_diag "another session from this address: HTTP $code"
t0=$(date +%s%N)
en_enroll S0001 "pkcs11:token=$TOK" >"$T/out" 2>&1
rc=$?
t1=$(date +%s%N)
cat "$T/out" >&2
tap_check "enroll succeeds though the session endpoint said 429 first" \
    test $rc = 0
tap_check "the agent waited out the Retry-After" sh -c \
    "grep -q 'the server is busy, asking again in [12] s' '$XDG_RUNTIME_DIR/p11enroll/agent.log' && test $(((t1 - t0) / 1000000)) -ge 1000"
tap_check "the RA answered that 429" grep -q 'rate-limited\|429' "$T/ra.log"

# --- the subject: one O with the '/' in it
"$P11ENROLL" --json list >"$T/list.json" 2>&1
tap_check "the certificate's O is the contract name, '/' included" \
    python3 -c '
import json, sys
c = json.load(open(sys.argv[1]))["credentials"]
assert len(c) == 1 and c[0]["state"] == "INSTALLED", c
s = c[0]["subject"]
assert "Bank/Shinkin" in s and "CN=S0001" in s, s
assert "O=Bank" not in s.replace("O=Bank/Shinkin", ""), s
' "$T/list.json"

printf '%s\n' "$PIN" | "$P11ENROLL" --json --pin-stdin token objects --login \
    "pkcs11:token=$TOK" >"$T/objs.json" 2>/dev/null
eval "$(python3 -c '
import json, sys
o = [x for x in json.load(open(sys.argv[1]))["objects"] if x["kind"] == "certificate" and not x.get("authority")][0]
print("id=%s serial=%s" % (o["id"], o["serial"].upper()))' "$T/objs.json")"
tap_check "the RA issued exactly that certificate ($serial)" sh -c \
    "test \"\$(sqlite3 '$D/ra.db' \"SELECT count(*) FROM certificates WHERE upper(serial) = '$serial'\")\" = 1"

# --- nginx trusts the issuing CA and the CRL
"$RA" crl >"$T/crl.pem" 2>>"$T/ra.log" || tap_bail "p11enroll-ra crl failed"
browser_nginx_start "$T/nginx" "$D/tls.crt" "$D/tls.key" "$D/ca.crt" \
    "$T/crl.pem" || tap_bail "nginx did not start"
nurl=https://127.0.0.1:$NGINX_PORT/
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
    --cacert "$D/server-ca.crt" "$nurl")
tap_check "without a client certificate nginx refuses ($code)" [ "$code" = 400 ]

pct=$(printf '%s' "$id" | sed 's/../%&/g')
login()
{
	curl -s --max-time 10 --cacert "$D/server-ca.crt" \
	    --cert "pkcs11:token=$TOK;id=$pct;type=cert" \
	    --key "pkcs11:token=$TOK;id=$pct;type=private;pin-value=$PIN" \
	    -o "$T/page" -w '%{http_code}' "$nurl" 2>"$T/curl.err"
}
code=$(login)
cat "$T/curl.err" "$T/page" >&2
tap_check "curl with the key on the token logs in ($code)" [ "$code" = 200 ]
tap_check "the page shows the subject issued by the RA" \
    grep -q 'subject: CN=S0001,OU=.*,O=Bank/Shinkin' "$T/page"
tap_check "nginx logged verify=SUCCESS with the RA's serial" \
    grep -q "^200 verify=SUCCESS serial=$serial " "$NGINX_DIR/access.log"

# --- revoked: the refreshed CRL refuses the same login
tap_check "p11enroll-ra cert revoke $serial" \
    "$RA" cert revoke "$serial" --reason keyCompromise
"$RA" crl >"$T/crl.pem" 2>>"$T/ra.log"
kill -HUP "$NGINX_PID"
# the reload is asynchronous: bounded wait for the new worker's answer
i=0
while [ $i -lt 50 ]; do
	code=$(login)
	[ "$code" = 400 ] && break
	sleep 0.1
	i=$((i + 1))
done
tap_check "after the CRL refresh nginx refuses the same login ($code)" \
    [ "$code" = 400 ]
tap_check "and logs it as revoked" \
    grep -q 'verify=FAILED:certificate revoked' "$NGINX_DIR/access.log"

tap_done
