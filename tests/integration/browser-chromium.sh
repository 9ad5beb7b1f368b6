#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# A real browser logs in with the certificate p11enroll put on the token.
#
# As uid 65534 (p11-kit ignores per-user module configs for root, and CI
# runs as root) with a private HOME and XDG_CONFIG_HOME:
#   - a SoftHSM2 token behind p11fault, registered only in that user's
#     p11-kit config (tests/lib/p11kit-env.sh);
#   - p11enroll token keygen / token csr, the CSR signed by the client CA
#     of tests/lib/pki.sh (clientAuth), token import of leaf + CA;
#   - nginx on 127.0.0.1 (random port, server CA certificate) requiring a
#     client certificate from the client CA and echoing its subject and
#     serial;
#   - p11enroll browser setup making ~/.pki/nssdb with p11-kit-proxy;
#     the test (not p11enroll) trusts the *server* CA there;
#   - headless Chromium with a fresh profile whose Default/Preferences
#     pre-seed certificate auto-selection, --dump-dom of the page.
# The PIN: a headless browser can only ask for it in a dialog nobody can
# answer, so the browser's p11fault config has the test-only directive
# login-pin-file (a real C_Login with the real PIN, in the browser's own
# process).  tests/integration/browser-pin.sh types it into Chromium's
# real dialog instead.
#
# P11E_SCREENSHOT=FILE also keeps the screenshot of the logged-in page
# (doc/images/chromium-login.png was made so).

. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/softhsm.sh"
. "$top_srcdir/tests/lib/p11kit-env.sh"
. "$top_srcdir/tests/lib/agent.sh"
. "$top_srcdir/tests/lib/pki.sh"
. "$top_srcdir/tests/lib/browser.sh"

browser_require
module=$BROWSER_P11FAULT

tap_plan 15

U=65534
tap_tmpdir T
browser_user_env "$T" work chrome/Default || tap_bail "cannot make $T"

softhsm_setup p11e-browser >&2 || tap_bail "cannot create a SoftHSM2 token"
chown -R "$U:$U" "$SOFTHSM_DIR"
chmod 0755 "$SOFTHSM_DIR"
p11kit_env_setup || tap_bail "cannot make the p11-kit home"
p11kit_env_add_module p11fault "$module" || tap_bail "cannot register p11fault"
# The agent's faults: none.  The browser's: the test-only auto-login.
P11FAULT_CONF=$P11KIT_HOME/p11fault-agent.conf
export P11FAULT_CONF
printf 'module = %s\nlog = %s\n' "$SOFTHSM_MODULE" "$P11KIT_HOME/agent-calls.log" \
    >"$P11FAULT_CONF"
pinfile=$P11KIT_HOME/pin
printf '%s\n' "$SOFTHSM_PIN" >"$pinfile"
chmod 0600 "$pinfile"
bconf=$P11KIT_HOME/p11fault-browser.conf
bcalls=$P11KIT_HOME/browser-calls.log
printf 'module = %s\nlog = %s\nlogin-pin-file = %s\n' "$SOFTHSM_MODULE" \
    "$bcalls" "$pinfile" >"$bconf"
chown "$U:$U" "$P11FAULT_CONF" "$pinfile" "$bconf"

run65534()
{
	p11kit_as_user "$P11ENROLL" "$@"
}

pki_setup "$T/pki" >&2 || tap_bail "cannot make the test CAs"
chmod 0755 "$T/pki"
URI="pkcs11:token=p11e-browser"
W=$T/work

# --- the certificate onto the token with p11enroll
printf '%s\n' "$SOFTHSM_PIN" | run65534 --pin-stdin --json token keygen \
    "$URI" --label browser-key >"$W/keygen.json" 2>"$W/keygen.err"
id=$(sed -n 's/^ *"id": "\([0-9a-f]*\)",*$/\1/p' "$W/keygen.json")
cat "$W/keygen.err" "$W/keygen.json" >&2
tap_check "p11enroll token keygen makes an EC key on the token (id $id)" \
    eval '[ -n "$id" ] && grep -q "\"key_type\": \"ec-p256\"" "$W/keygen.json"'
subject="/O=p11enroll test/CN=browser user $$"
printf '%s\n' "$SOFTHSM_PIN" | run65534 --pin-stdin token csr "$URI" \
    --id "$id" --subject "$subject" --out "$W/user.csr" >&2
printf '%s\n' "[ext]" "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature" "extendedKeyUsage=clientAuth" \
    >"$W/user.ext"
openssl x509 -req -in "$W/user.csr" -CA "$PKI_CLIENT_CA_CERT" \
    -CAkey "$PKI_CLIENT_CA_KEY" -CAserial "$W/ca.srl" -CAcreateserial \
    -days 2 -sha256 -extfile "$W/user.ext" -extensions ext \
    -out "$W/user.pem" >&2 2>&1
tap_check "the CSR made on the token is signed by the client CA" \
    openssl verify -CAfile "$PKI_CLIENT_CA_CERT" "$W/user.pem"
cat "$W/user.pem" "$PKI_CLIENT_CA_CERT" >"$W/chain.pem"
chmod 0644 "$W/chain.pem"
printf '%s\n' "$SOFTHSM_PIN" | run65534 --pin-stdin token import "$URI" \
    "$W/chain.pem" >"$W/import.out" 2>&1
cat "$W/import.out" >&2
tap_check "p11enroll token import stores leaf and CA and checks the pair" \
    eval 'grep -q "checked that they belong together" "$W/import.out" &&
    grep -q "CA certificates: 1 added" "$W/import.out"'
browser_agent_stop
want_dn=$(openssl x509 -in "$W/user.pem" -noout -subject -nameopt RFC2253 |
    sed 's/^subject=//')
want_serial=$(openssl x509 -in "$W/user.pem" -noout -serial |
    sed 's/^serial=//')
tap_diag "certificate on the token: $want_dn, serial $want_serial"

# --- nginx
browser_nginx_start "$T/nginx" "$PKI_SERVER_CERT" "$PKI_SERVER_KEY" \
    "$PKI_CLIENT_CA_CERT" || tap_bail "nginx did not start"
url="https://127.0.0.1:$NGINX_PORT/"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
    --cacert "$PKI_SERVER_CA_CERT" "$url")
tap_check "without a client certificate nginx refuses the page ($code)" \
    [ "$code" = 400 ]

# --- the browser's NSS database, by p11enroll
nssdb=$P11KIT_HOME/.pki/nssdb
out=$(run65534 browser setup 2>&1)
printf '%s\n' "$out" >&2
tap_check "browser setup creates ~/.pki/nssdb with p11-kit-proxy" eval \
    'case "$out" in *"$nssdb: added (created the database)"*) true ;; *) false ;; esac'
out=$(run65534 browser setup 2>&1)
tap_check "browser setup again: already present, nothing changed" eval \
    'case "$out" in *"$nssdb: already present as \"p11-kit-proxy (p11enroll)\""*) true ;; *) false ;; esac'
# The server's CA, trusted by the test, not by p11enroll.
p11kit_as_user certutil -A -d "sql:$nssdb" -n "p11enroll test server CA" \
    -t "C,," -i "$PKI_SERVER_CA_CERT" >&2 2>&1
trusted=$(p11kit_as_user certutil -L -d "sql:$nssdb" -h internal 2>&1)
printf '%s\n' "$trusted" >&2
tap_check "the client CA is no trust anchor in the browser's database" eval \
    'case "$trusted" in *"client CA"*) false ;; *"server CA"*) true ;; *) false ;; esac'
keys=$(p11kit_as_user certutil -K -d "sql:$nssdb" -h internal </dev/null 2>&1)
printf '%s\n' "$keys" >&2
tap_check "the browser's database holds no private key" eval \
    'case "$keys" in *"no keys found"*) true ;; *) false ;; esac'

# --- Chromium
browser_chromium_prefs "$T/chrome/Default/Preferences" \
    "https://127.0.0.1:$NGINX_PORT" "p11enroll test client CA"
chown -R "$U:$U" "$T/chrome"
: >"$bcalls"
chown "$U:$U" "$bcalls"
start=$(date +%s)
P11FAULT_CONF=$bconf p11kit_as_user timeout 40 "$CHROMIUM" \
    $CHROMIUM_FLAGS --user-data-dir="$T/chrome" --dump-dom "$url" \
    >"$W/dom.html" 2>"$W/chromium.err"
crc=$?
tap_diag "chromium exit $crc after $(($(date +%s) - start)) s"
sed 's/^/chromium: /' "$W/chromium.err" | tail -n 20 >&2
cat "$W/dom.html" >&2
tap_check "the page shows the subject of the certificate on the token" \
    grep -Fq "subject: $want_dn<" "$W/dom.html"
tap_check "... and its serial" grep -Fq "serial: $want_serial<" "$W/dom.html"
tap_check "nginx logged the login with that serial from HeadlessChrome" \
    grep -q "^200 verify=SUCCESS serial=$want_serial .*HeadlessChrome" \
    "$NGINX_DIR/access.log"
cat "$bcalls" | sort | uniq -c >&2
tap_check "the browser's process logged in once on the token (auto-login)" \
    eval '[ "$(grep -c "^C_Login rv=0x00000000 autologin" "$bcalls")" -ge 1 ]'
tap_check "the TLS signature was made on the token (C_SignInit, C_Sign)" \
    eval 'grep -q "^C_SignInit rv=0x00000000" "$bcalls" &&
    grep -q "^C_Sign rv=0x00000000" "$bcalls"'

# --- a screenshot of the logged-in page (for the user guide)
rm -rf "$T/chrome2"
mkdir -p "$T/chrome2/Default"
cp "$T/chrome/Default/Preferences" "$T/chrome2/Default/Preferences"
chown -R "$U:$U" "$T/chrome2"
P11FAULT_CONF=$bconf p11kit_as_user timeout 40 "$CHROMIUM" \
    $CHROMIUM_FLAGS --user-data-dir="$T/chrome2" \
    --screenshot="$W/chromium-login.png" --window-size=800,400 "$url" \
    >/dev/null 2>"$W/chromium2.err"
tap_check "a screenshot of the logged-in page" eval \
    '[ "$(head -c 8 "$W/chromium-login.png" | od -An -tx1 | tr -d " ")" = 89504e470d0a1a0a ]'
if [ -n "${P11E_SCREENSHOT-}" ] && [ -s "$W/chromium-login.png" ]; then
	cp "$W/chromium-login.png" "$P11E_SCREENSHOT"
fi

# --- undo removes exactly what setup added
out=$(run65534 browser setup --undo 2>&1)
printf '%s\n' "$out" >&2
mods=$(p11kit_as_user modutil -dbdir "sql:$nssdb" -rawlist 2>&1)
tap_check "browser setup --undo removes the module, keeps the database" eval \
    'case "$out" in *"$nssdb: removed"*) true ;; *) false ;; esac &&
    case "$mods" in *p11-kit-proxy*) false ;; *) true ;; esac &&
    p11kit_as_user certutil -L -d "sql:$nssdb" -n "p11enroll test server CA" >/dev/null'

tap_done
