#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# The certificate the agent enrolled from an intermediate issuing CA logs
# a real browser in where the website trusts only the root, and after
# the agent renews it the browser logs in with the new one.
#
#   - p11enroll-ra init --intermediate: root CA, issuing CA under it
#     (ca.crt holds both, EST cacerts answers both);
#   - p11enroll enroll as uid 65534 (p11-kit user config, as in
#     browser-chromium.sh): leaf + issuing CA + root onto the SoftHSM2
#     token behind p11fault;
#   - nginx: ssl_client_certificate = the root alone, ssl_verify_depth 2:
#     the login works only if Chromium presents the intermediate, which
#     it finds on the token;
#   - p11enroll renew (the RA's window is open: renew-before = validity):
#     a new key and certificate; after the grace period (1 s) the old
#     pair is gone, and a fresh headless Chromium logs in with the new
#     certificate (nginx's $ssl_client_serial is the new one, the one on
#     the token).

. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/softhsm.sh"
. "$top_srcdir/tests/lib/p11kit-env.sh"
. "$top_srcdir/tests/lib/agent.sh"
. "$top_srcdir/tests/lib/ra.sh"
. "$top_srcdir/tests/lib/enroll.sh"
. "$top_srcdir/tests/lib/pki.sh"
. "$top_srcdir/tests/lib/browser.sh"

browser_require enroll

tap_plan 14

U=65534
tap_tmpdir T
browser_user_env "$T" work || tap_bail "cannot make $T"
PIN='Pin-Browser-Renew-51c'
TOK=p11e-brenew

browser_token $TOK "$PIN" "$BROWSER_P11FAULT" || tap_bail "cannot make the token"

# --- the RA: an issuing CA under a root; renewal allowed at once
EN_RA_INIT_ARGS=--intermediate
en_ra_start しんきん商事 "rate-limit = 60000" "rate-burst = 1000" \
    "[policy]" "validity = 3600" "renew-before = 3600" ||
    { cat "$T/ra.log" >&2; tap_bail "p11enroll-ra serve did not start"; }
tap_check "the RA's ca.crt: the issuing CA, then the root that issued it" \
    eval '[ "$(grep -c "BEGIN CERTIFICATE" "$D/ca.crt")" = 2 ] &&
    openssl verify -CAfile "$D/root-ca.crt" "$D/ca.crt" >&2'
# field KEY: a member of the credential in `p11enroll --json list`
field()
{
	p11kit_as_user "$P11ENROLL" --json list 2>/dev/null | python3 -c '
import json, sys
c = json.load(sys.stdin)["credentials"][0]
print(c.get(sys.argv[1], ""))' "$1"
}

# token_serials: the serials of the leaf certificates on the token
token_serials()
{
	printf '%s\n' "$PIN" | p11kit_as_user "$P11ENROLL" --json --pin-stdin \
	    token objects "$URI" 2>/dev/null | python3 -c '
import json, sys
for o in json.load(sys.stdin)["objects"]:
    if o["kind"] == "certificate" and not o.get("authority"):
        print(o["serial"].upper())'
}

browser_enroll S0001 "grace-period = 1"
rc=$?
tap_check "S0001 enrolled as uid $U ($CRED)" eval '[ $rc = 0 ] && [ -n "$CRED" ]'
[ -n "$CRED" ] || tap_bail "enrollment failed"
CMD_PREFIX=p11kit_as_user
tap_check "the token holds the leaf and both CAs (issuing, root)" eval \
    '[ "$(en_count "$URI" certificate)" = 1 ] && [ "$(en_count "$URI" ca)" = 2 ]'
SER1=$(token_serials)
tap_diag "certificate on the token: serial $SER1"

# --- nginx trusting the root alone
pki_setup "$T/pki" >&2 || tap_bail "cannot make the test CAs"
chmod 0755 "$T/pki"
NGINX_VERIFY_DEPTH=2
browser_nginx_start "$T/nginx" "$PKI_SERVER_CERT" "$PKI_SERVER_KEY" \
    "$D/root-ca.crt" 2>&1 || tap_bail "nginx did not start"
url="https://127.0.0.1:$NGINX_PORT/"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
    --cacert "$PKI_SERVER_CA_CERT" "$url")
tap_check "without a client certificate nginx refuses the page ($code)" \
    [ "$code" = 400 ]
nssdb=$P11KIT_HOME/.pki/nssdb
p11kit_as_user "$P11ENROLL" browser setup >&2 2>&1
p11kit_as_user certutil -A -d "sql:$nssdb" -n "p11enroll test server CA" \
    -t "C,," -i "$PKI_SERVER_CA_CERT" >&2 2>&1

# chromium_login N: a fresh profile, the page into $T/work/domN.html
chromium_login()
{
	rm -rf "$T/chrome$1"
	mkdir -p "$T/chrome$1/Default"
	browser_chromium_prefs "$T/chrome$1/Default/Preferences" \
	    "https://127.0.0.1:$NGINX_PORT" "p11enroll-ra issuing CA"
	chown -R "$U:$U" "$T/chrome$1"
	P11FAULT_CONF=$BROWSER_P11FAULT_CONF p11kit_as_user timeout 40 "$CHROMIUM" \
	    $CHROMIUM_FLAGS --user-data-dir="$T/chrome$1" --dump-dom "$url" \
	    >"$T/work/dom$1.html" 2>"$T/work/chromium$1.err"
	tap_diag "chromium exit $?"
	tail -n 5 "$T/work/chromium$1.err" | sed 's/^/chromium: /' >&2
	cat "$T/work/dom$1.html" >&2
}

chromium_login 1
tap_check "the page shows the subject of the enrolled certificate" \
    grep -Fq "subject: CN=S0001,OU=" "$T/work/dom1.html"
tap_check "... issued by the intermediate, with the token's serial" eval \
    'grep -Fq "issuer: CN=p11enroll-ra issuing CA,O=p11enroll-ra<" "$T/work/dom1.html" &&
    grep -Fq "serial: $SER1<" "$T/work/dom1.html"'
tap_check "nginx (trusting only the root) verified the chain from Chromium" \
    grep -q "^200 verify=SUCCESS serial=$SER1 .*HeadlessChrome" \
    "$NGINX_DIR/access.log"

# --- renewal by the agent
printf '%s\n' "$PIN" | p11kit_as_user "$P11ENROLL" --pin-stdin renew \
    --credential "$CRED" >"$T/renew.out" 2>&1
rc=$?
cat "$T/renew.out" >&2
SER2=$(field serial | tr 'a-f' 'A-F')
tap_check "p11enroll renew: a new certificate ($SER2)" eval \
    '[ $rc = 0 ] && [ -n "$SER2" ] && [ "$SER2" != "$SER1" ]'
end=$(($(date +%s) + 30))
while [ -n "$(field old_id)" ] && [ "$(date +%s)" -lt $end ]; do
	sleep 0.5
done
tap_check "after the grace period the old pair is gone" \
    test -z "$(field old_id)"
tap_check "the token holds only the new certificate" \
    test "$(token_serials)" = "$SER2"

chromium_login 2
tap_check "a fresh Chromium logs in with the new certificate" \
    grep -Fq "serial: $SER2<" "$T/work/dom2.html"
tap_check "nginx logged the new serial, not the old one" eval \
    '[ "$(tail -n 1 "$NGINX_DIR/access.log" | sed -n "s/^200 verify=SUCCESS serial=\([0-9A-F]*\) .*/\1/p")" = "$SER2" ]'
tap_check "the RA: the old certificate superseded, the new one valid" \
    test "$(sqlite3 "$D/ra.db" "SELECT status FROM certificates WHERE upper(serial) = '$SER1'")/$(sqlite3 "$D/ra.db" "SELECT status FROM certificates WHERE upper(serial) = '$SER2'")" = superseded/valid
tap_check "the renewed chain on the token still verifies to the root" eval \
    '[ "$(en_count "$URI" ca)" = 2 ]'

tap_done
