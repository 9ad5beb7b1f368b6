#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# p11fault registered with p11-kit through a private user config
# (tests/lib/p11kit-env.sh): p11-kit lists it, p11-kit-proxy routes calls
# through it to SoftHSM2, and a fault set in P11FAULT_CONF shows up there.

. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/softhsm.sh"
. "$top_srcdir/tests/lib/p11kit-env.sh"

module=$top_builddir/tests/p11fault/p11fault.so
[ -r "$module" ] || tap_bail "$module not built"
reason=$(p11kit_env_check) || tap_skip_all "$reason"
command -v softhsm2-util >/dev/null 2>&1 ||
    tap_skip_all "softhsm2-util not installed (Debian package softhsm2)"
command -v pkcs11-tool >/dev/null 2>&1 ||
    tap_skip_all "pkcs11-tool not installed (Debian package opensc)"
proxy=$(pkg-config --variable=proxy_module p11-kit-1 2>/dev/null)
[ -r "$proxy" ] || proxy=$(ls /usr/lib/*/p11-kit-proxy.so 2>/dev/null | head -n 1)
[ -r "$proxy" ] || tap_skip_all "p11-kit-proxy.so not found"

tap_plan 9

softhsm_setup p11kit-fault >&2 || tap_bail "cannot create a SoftHSM2 token"
p11kit_env_setup || tap_bail "cannot make the p11-kit home"
p11kit_env_add_module p11fault "$module" || tap_bail "cannot register"
# The token and the fault configuration belong to the test user.
chown -R "$P11KIT_USER_ID:$P11KIT_USER_ID" "$SOFTHSM_DIR"
chmod 0755 "$SOFTHSM_DIR"
P11FAULT_CONF=$P11KIT_HOME/p11fault.conf
export P11FAULT_CONF
calls=$P11KIT_HOME/calls.log

conf()
{
	{
		echo "module = $SOFTHSM_MODULE"
		echo "log = $calls"
		printf '%s\n' "$@"
	} >"$P11FAULT_CONF.tmp" &&
	chown "$P11KIT_USER_ID:$P11KIT_USER_ID" "$P11FAULT_CONF.tmp" &&
	mv "$P11FAULT_CONF.tmp" "$P11FAULT_CONF"
}

conf
out=$(p11kit_as_user p11-kit list-modules 2>&1)
tap_diag "$out"
tap_check "p11-kit as uid $P11KIT_USER_ID lists the p11fault module" \
    eval 'printf "%s\n" "$out" | grep -q "^p11fault: $P11KIT_HOME/p11fault.so"'
tap_check "... with our token behind it" \
    eval 'printf "%s\n" "$out" | grep -q "token: p11kit-fault"'
tap_check "user-config: only hides the system modules" \
    eval '! printf "%s\n" "$out" | grep -q "^softhsm2:"'
tap_check "the calls went through p11fault" grep -q "^C_GetTokenInfo rv=0x00000000" "$calls"

out=$(HOME=$P11KIT_HOME p11-kit list-modules 2>&1)
tap_check "as root the same HOME is ignored" \
    eval '! printf "%s\n" "$out" | grep -q "^p11fault:"'

# Through p11-kit-proxy, as an application would load it.
: >"$calls"
out=$(p11kit_as_user pkcs11-tool --module "$proxy" -L 2>&1)
tap_diag "$out"
tap_check "p11-kit-proxy shows the token through p11fault" \
    eval 'printf "%s\n" "$out" | grep -q "token label *: p11kit-fault"'
tap_check "... and p11fault logged the proxy's calls" \
    grep -q "^C_GetSlotList rv=0x00000000" "$calls"

conf "token-absent = yes"
out=$(p11kit_as_user pkcs11-tool --module "$proxy" -L 2>&1)
tap_diag "$out"
tap_check "token-absent: the proxy no longer sees the token" \
    eval '! printf "%s\n" "$out" | grep -q "p11kit-fault"'

conf "fail = C_Login 1 CKR_PIN_LOCKED"
out=$(p11kit_as_user pkcs11-tool --module "$proxy" --token-label \
    p11kit-fault --login --pin "$SOFTHSM_PIN" -O 2>&1)
tap_diag "$out"
tap_check "an injected CKR_PIN_LOCKED reaches the application" \
    eval 'printf "%s\n" "$out" | grep -q "CKR_PIN_LOCKED"'

tap_done
