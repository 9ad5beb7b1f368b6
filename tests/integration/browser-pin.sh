#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# The PIN typed into Chromium's real "Unlock Security Device" dialog.
#
# Like browser-chromium.sh (token prepared with p11enroll token keygen,
# csr and import; nginx requiring the client certificate; NSS database
# from p11enroll browser setup), but without the test-only auto-login:
# Chromium runs with a window on Xvfb and xdotool types the PIN into the
# dialog Chromium opens when it needs the token's key.  It depends on
# the English UI text and on window timing, so it is not part of
# `make check`; run it with
#
#   make check-browser-pin
#
# (needs the Debian packages xvfb and xdotool besides those of
# browser-chromium.sh).

. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/softhsm.sh"
. "$top_srcdir/tests/lib/p11kit-env.sh"
. "$top_srcdir/tests/lib/agent.sh"
. "$top_srcdir/tests/lib/pki.sh"
. "$top_srcdir/tests/lib/browser.sh"

module=$top_builddir/tests/p11fault/p11fault.so
[ -r "$module" ] || tap_bail "$module not built"
reason=$(p11kit_env_check) || tap_skip_all "$reason"
reason=$(browser_check) || tap_skip_all "$reason"
browser_check >/dev/null
for t in Xvfb xdotool; do
	command -v $t >/dev/null 2>&1 ||
	    tap_skip_all "$t not installed (Debian packages xvfb, xdotool)"
done
setpriv --reuid=65534 --regid=65534 --clear-groups test -x "$P11ENROLLD" ||
    tap_skip_all "uid 65534 cannot run $P11ENROLLD (build directory mode)"

tap_plan 6

U=65534
tap_tmpdir T
browser_user_env "$T" work chrome/Default || tap_bail "cannot make $T"

softhsm_setup p11e-pin >&2 || tap_bail "cannot create a SoftHSM2 token"
chown -R "$U:$U" "$SOFTHSM_DIR"
chmod 0755 "$SOFTHSM_DIR"
p11kit_env_setup || tap_bail "cannot make the p11-kit home"
p11kit_env_add_module p11fault "$module" || tap_bail "cannot register p11fault"
P11FAULT_CONF=$P11KIT_HOME/p11fault.conf
calls=$P11KIT_HOME/calls.log
export P11FAULT_CONF
# no login-pin-file: the browser has to ask
printf 'module = %s\nlog = %s\n' "$SOFTHSM_MODULE" "$calls" >"$P11FAULT_CONF"
chown "$U:$U" "$P11FAULT_CONF"

run65534()
{
	p11kit_as_user "$P11ENROLL" "$@"
}

pki_setup "$T/pki" >&2 || tap_bail "cannot make the test CAs"
chmod 0755 "$T/pki"
URI="pkcs11:token=p11e-pin"
W=$T/work

printf '%s\n' "$SOFTHSM_PIN" | run65534 --pin-stdin --json token keygen \
    "$URI" >"$W/keygen.json" 2>&1
id=$(sed -n 's/^ *"id": "\([0-9a-f]*\)",*$/\1/p' "$W/keygen.json")
printf '%s\n' "$SOFTHSM_PIN" | run65534 --pin-stdin token csr "$URI" \
    --id "$id" --subject "/O=p11enroll test/CN=pin dialog user" \
    --out "$W/user.csr" >&2
printf '%s\n' "[ext]" "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=clientAuth" >"$W/user.ext"
openssl x509 -req -in "$W/user.csr" -CA "$PKI_CLIENT_CA_CERT" \
    -CAkey "$PKI_CLIENT_CA_KEY" -CAserial "$W/ca.srl" -CAcreateserial \
    -days 2 -extfile "$W/user.ext" -extensions ext -out "$W/user.pem" >&2 2>&1
cat "$W/user.pem" "$PKI_CLIENT_CA_CERT" >"$W/chain.pem"
chmod 0644 "$W/chain.pem"
printf '%s\n' "$SOFTHSM_PIN" | run65534 --pin-stdin token import "$URI" \
    "$W/chain.pem" >"$W/import.out" 2>&1
tap_check "the certificate is on the token (p11enroll token import)" \
    grep -q "checked that they belong together" "$W/import.out"
browser_agent_stop
serial=$(openssl x509 -in "$W/user.pem" -noout -serial | sed 's/^serial=//')

browser_nginx_start "$T/nginx" "$PKI_SERVER_CERT" "$PKI_SERVER_KEY" \
    "$PKI_CLIENT_CA_CERT" || tap_bail "nginx did not start"
url="https://127.0.0.1:$NGINX_PORT/"
nssdb=$P11KIT_HOME/.pki/nssdb
run65534 browser setup >&2
p11kit_as_user certutil -A -d "sql:$nssdb" -n "p11enroll test server CA" \
    -t "C,," -i "$PKI_SERVER_CA_CERT" >&2 2>&1
browser_chromium_prefs "$T/chrome/Default/Preferences" \
    "https://127.0.0.1:$NGINX_PORT" "p11enroll test client CA"
chown -R "$U:$U" "$T/chrome"

# --- Xvfb on a free display
n=$((90 + $$ % 100))
while [ -e "/tmp/.X11-unix/X$n" ] || [ -e "/tmp/.X$n-lock" ]; do
	n=$((n + 1))
done
setsid Xvfb ":$n" -screen 0 1024x768x24 -nolisten tcp -ac \
    >"$W/xvfb.log" 2>&1 &
xpid=$!
tap_at_exit "kill $xpid"
i=0
while [ ! -e "/tmp/.X11-unix/X$n" ] && [ $i -lt 100 ]; do
	sleep 0.05
	i=$((i + 1))
done
DISPLAY=:$n
export DISPLAY

# --- Chromium with a window, the PIN typed into its dialog
: >"$calls"
chown "$U:$U" "$calls"
flags=$(printf '%s\n' $CHROMIUM_FLAGS | grep -v '^--headless$')
p11kit_as_user setsid timeout 60 "$CHROMIUM" $flags --ozone-platform=x11 \
    --lang=en-US --user-data-dir="$T/chrome" "$url" \
    >"$W/chromium.log" 2>&1 &
cpid=$!
tap_at_exit "kill -- -$cpid"
win=$(timeout 30 xdotool search --sync --onlyvisible \
    --name 'Unlock Security Device' 2>/dev/null | head -n 1)
tap_check "Chromium asks for the token PIN in its dialog" [ -n "$win" ]
if [ -n "$win" ]; then
	# no window manager: windowactivate needs one, windowfocus does not
	xdotool windowfocus --sync "$win"
	xdotool type --delay 50 "$SOFTHSM_PIN"
	xdotool key Return
fi
i=0
while ! grep -q "serial=$serial" "$NGINX_DIR/access.log" 2>/dev/null &&
    [ $i -lt 300 ]; do
	sleep 0.1
	i=$((i + 1))
done
kill -- "-$cpid" 2>/dev/null
cat "$NGINX_DIR/access.log" >&2
sort "$calls" | uniq -c >&2
tap_check "nginx logged the login with the token certificate from Chrome" \
    grep -q "^200 verify=SUCCESS serial=$serial .*Chrome/" \
    "$NGINX_DIR/access.log"
tap_check "the browser logged in with the typed PIN (one C_Login, no auto-login)" \
    eval '[ "$(grep -c "^C_Login rv=0x00000000 user=1 pin_len=${#SOFTHSM_PIN}" "$calls")" = 1 ] &&
    ! grep -q autologin "$calls"'
tap_check "no C_Login failed" eval '! grep "^C_Login rv=0x0*[1-9a-f]" "$calls"'
tap_check "the TLS signature was made on the token" \
    grep -q "^C_Sign rv=0x00000000" "$calls"

tap_done
