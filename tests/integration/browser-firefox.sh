#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Firefox ESR, headless, logs in with the certificate the agent enrolled
# onto the token (as browser-chromium.sh does for Chromium).
#
# As uid 65534 with a private HOME (p11-kit ignores per-user module
# configs for root):
#   - p11enroll-ra serve on 127.0.0.1, p11enroll enroll onto a SoftHSM2
#     token behind p11fault;
#   - a Firefox profile listed in ~/.mozilla/firefox/profiles.ini whose
#     NSS database exists (as after a first start of Firefox);
#     p11enroll browser setup registers p11-kit-proxy in it; the test
#     trusts the server CA there and sets security.default_personal_cert
#     to "Select Automatically" in user.js (headless Firefox otherwise
#     waits on an invisible certificate picker);
#   - firefox-esr --headless --screenshot of nginx's page: nginx logs the
#     login with the token's certificate and Firefox's user agent.
# The PIN: the browser's p11fault config has the test-only auto-login
# (login-pin-file), as in browser-chromium.sh.
#
# P11E_SCREENSHOT=FILE keeps the screenshot of the logged-in page.

. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/softhsm.sh"
. "$top_srcdir/tests/lib/p11kit-env.sh"
. "$top_srcdir/tests/lib/agent.sh"
. "$top_srcdir/tests/lib/ra.sh"
. "$top_srcdir/tests/lib/enroll.sh"
. "$top_srcdir/tests/lib/pki.sh"
. "$top_srcdir/tests/lib/browser.sh"

FIREFOX=$(command -v firefox-esr 2>/dev/null)
[ -n "$FIREFOX" ] ||
    tap_skip_all "firefox-esr not installed (Debian package firefox-esr)"
browser_require enroll

tap_plan 7

U=65534
tap_tmpdir T
browser_user_env "$T" work || tap_bail "cannot make $T"
browser_token p11e-firefox 'Pin-Firefox-7c2e' "$BROWSER_P11FAULT" ||
    tap_bail "cannot make the token"
en_ra_start ||
    { cat "$T/ra.log" >&2; tap_bail "p11enroll-ra serve did not start"; }
browser_enroll S0001
tap_check "S0001 enrolled as uid $U ($CRED)" test -n "$CRED"
[ -n "$CRED" ] || tap_bail "enrollment failed"
SER=$(sed -n 's/^  serial   \([0-9A-Fa-f]*\)$/\1/p' "$T/enroll.out")

pki_setup "$T/pki" >&2 || tap_bail "cannot make the test CAs"
chmod 0755 "$T/pki"
browser_nginx_start "$T/nginx" "$PKI_SERVER_CERT" "$PKI_SERVER_KEY" \
    "$D/ca.crt" 2>&1 || tap_bail "nginx did not start"
url="https://127.0.0.1:$NGINX_PORT/"

# --- a Firefox profile as after its first start, then browser setup
ff=$P11KIT_HOME/.mozilla/firefox
prof=$ff/p11e.default
mkdir -p "$prof"
printf '%s\n' "[Profile0]" "Name=default" "IsRelative=1" \
    "Path=p11e.default" "Default=1" >"$ff/profiles.ini"
chown -R "$U:$U" "$P11KIT_HOME/.mozilla"
p11kit_as_user certutil -N -d "sql:$prof" --empty-password >&2 2>&1
out=$(p11kit_as_user "$P11ENROLL" browser setup 2>&1)
printf '%s\n' "$out" >&2
tap_check "browser setup registers p11-kit-proxy in the Firefox profile" \
    eval 'case "$out" in *"$prof (profile default): added"*) true ;; *) false ;; esac'
p11kit_as_user certutil -A -d "sql:$prof" -n "p11enroll test server CA" \
    -t "C,," -i "$PKI_SERVER_CA_CERT" >&2 2>&1
printf '%s\n' 'user_pref("security.default_personal_cert", "Select Automatically");' \
    'user_pref("browser.shell.checkDefaultBrowser", false);' \
    'user_pref("app.update.enabled", false);' \
    'user_pref("datareporting.policy.dataSubmissionEnabled", false);' \
    'user_pref("toolkit.telemetry.reportingpolicy.firstRun", false);' \
    >"$prof/user.js"
chown "$U:$U" "$prof/user.js"

# --- Firefox
: >"$T/work/shot.png"
chown "$U:$U" "$T/work/shot.png"
start=$(date +%s)
P11FAULT_CONF=$BROWSER_P11FAULT_CONF MOZ_HEADLESS=1 p11kit_as_user \
    timeout 90 "$FIREFOX" --headless --no-remote --profile "$prof" \
    --screenshot "$T/work/shot.png" --window-size=800,400 "$url" \
    >"$T/work/firefox.out" 2>&1
frc=$?
tap_diag "firefox exit $frc after $(($(date +%s) - start)) s"
tail -n 20 "$T/work/firefox.out" | sed 's/^/firefox: /' >&2
cat "$NGINX_DIR/access.log" >&2
tap_check "firefox-esr --screenshot finished (not stuck on a dialog)" \
    test $frc = 0
tap_check "nginx logged the login with the token's certificate from Firefox" \
    grep -q "^200 verify=SUCCESS serial=$SER .*Firefox/" "$NGINX_DIR/access.log"
tap_check "a screenshot of the logged-in page" eval \
    '[ "$(head -c 8 "$T/work/shot.png" | od -An -tx1 | tr -d " ")" = 89504e470d0a1a0a ]'
if [ -n "${P11E_SCREENSHOT-}" ] && [ -s "$T/work/shot.png" ]; then
	cp "$T/work/shot.png" "$P11E_SCREENSHOT"
fi
tap_check "the profile's database holds no private key" eval \
    'p11kit_as_user certutil -K -d "sql:$prof" -h internal </dev/null 2>&1 |
    grep -q "no keys found"'

out=$(p11kit_as_user "$P11ENROLL" browser setup --undo 2>&1)
printf '%s\n' "$out" >&2
tap_check "browser setup --undo removes it from the profile" eval \
    'case "$out" in *"$prof (profile default): removed"*) true ;; *) false ;; esac'

tap_done
