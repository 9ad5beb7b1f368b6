#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# p11enroll doctor: a healthy setup (a credential enrolled from
# p11enroll-ra serve onto a SoftHSM2 token, the browsers registered) is
# all ok with exit status 0, and doctor changes nothing (state files,
# token objects, NSS database identical before and after).  Then one
# broken setup at a time, each reported as a problem (exit status 1) with
# its fix: P11_KIT_DEBUG=all, a module file with log-calls: yes, the
# browser not registered, a Flatpak browser (a warning), the certificate
# without its key, the token absent, the server stopped.

. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/softhsm.sh"
. "$top_srcdir/tests/lib/agent.sh"
. "$top_srcdir/tests/lib/ra.sh"
. "$top_srcdir/tests/lib/enroll.sh"

for c in softhsm2-util oathtool python3 sqlite3 openssl curl modutil \
    certutil pkcs11-tool; do
	command -v $c >/dev/null 2>&1 || tap_skip_all "$c not installed"
done
"$RA" --help 2>/dev/null | grep -q '^  serve' ||
    tap_skip_all "p11enroll-ra serve not built"
[ -z "${P11_KIT_DEBUG-}" ] || tap_skip_all "P11_KIT_DEBUG is set here"

tap_plan 24

tap_tmpdir T
agent_env "$T"
unset XDG_CONFIG_HOME
PIN='Pin-Doctor-4d1a'
softhsm_setup p11e-doctor "$PIN" >&2 || tap_bail "cannot create a SoftHSM2 token"
URI=pkcs11:token=p11e-doctor
en_ra_start || { cat "$T/ra.log" >&2; tap_bail "p11enroll-ra serve did not start"; }
en_user S0001 || tap_bail "user add failed"
SPIN=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["server_pin"])' "$T/S0001.inv")
cat >"$P11ENROLL_CONF" <<EOF
[service ra]
url = $URL
server-pin = $SPIN
EOF
printf '%s\n%s\n%s\n' "$PIN" "$PW" "$(en_otp S0001)" |
    "$P11ENROLL" enroll --service ra --token "$URI" --contract-id "$C" \
    --user-id S0001 --secrets-stdin >"$T/enroll.out" 2>&1 ||
    { cat "$T/enroll.out" >&2; tap_bail "enrollment failed"; }
CRED=$(sed -n 's/^enrolled: //p' "$T/enroll.out")
"$P11ENROLL" browser setup >&2 2>&1 || tap_bail "browser setup failed"

# doctor [ENV...]: runs p11enroll doctor, $rc, $out (text), $T/doctor.json
doctor()
{
	env "$@" "$P11ENROLL" doctor >"$T/doctor.txt" 2>&1
	rc=$?
	out=$(cat "$T/doctor.txt")
	env "$@" "$P11ENROLL" doctor --json >"$T/doctor.json" 2>/dev/null
	printf '%s\n' "--- doctor $* (exit $rc)" "$out" >&2
}
# has TEXT...: $out holds every TEXT
has()
{
	for h in "$@"; do
		case "$out" in
		*"$h"*) ;;
		*)
			tap_diag "missing: $h"
			return 1
			;;
		esac
	done
}
# count STATUS [CHECK]: checks with that status (of that check) in the JSON
count()
{
	python3 -c '
import json, sys
c = json.load(open(sys.argv[1]))["checks"]
print(sum(1 for x in c if x["status"] == sys.argv[2] and
          (len(sys.argv) < 4 or x["check"] == sys.argv[3])))' \
	    "$T/doctor.json" "$@"
}
# snapshot: the state files, the token's objects and the NSS database
snapshot()
{
	(cd "$XDG_STATE_HOME" && find . -type f -exec sha256sum {} + | sort)
	printf '%s\n' "$PIN" | "$P11ENROLL" --json --pin-stdin token objects \
	    --login "$URI" 2>/dev/null | python3 -c '
import json, sys
for o in sorted(json.load(sys.stdin)["objects"], key=lambda o: (o["kind"], o["uri"])):
    print(o["kind"], o["uri"], o.get("serial", ""))'
	(cd "$HOME/.pki/nssdb" && sha256sum cert9.db key4.db pkcs11.txt)
}

# --- healthy
snapshot >"$T/before"
doctor
tap_check "healthy: exit 0" test $rc = 0
tap_check "... no problem, no warning" \
    test "$(count problem)/$(count warning)" = 0/0
tap_check "... token, pairing, chain, server, browser and logging checked" \
    eval '[ "$(count ok token)" = 1 ] && [ "$(count ok pairing)" = 1 ] &&
    [ "$(count ok chain)" = 1 ] && [ "$(count ok server)" = 1 ] &&
    [ "$(count ok browser)" -ge 1 ] && [ "$(count ok p11kit-logging)" = 1 ] &&
    [ "$(count ok p11kit-modules)" = 1 ] && [ "$(count ok p11kit-proxy)" = 1 ]'
tap_check "... the text says so" has "0 warnings, 0 problems" \
    "the token 'p11e-doctor' (serial $SOFTHSM_SERIAL) is present" \
    "ok       server            ra: reached over TLS; the server's key is the pinned one"
snapshot >"$T/after"
tap_check "doctor changed nothing (state files, token objects, NSS database)" \
    cmp "$T/before" "$T/after"
tap_check "... and the snapshot saw them" eval \
    '[ "$(grep -c "/credentials/$CRED" "$T/before")" = 1 ] &&
    grep -q "^private-key " "$T/before" && grep -q "cert9.db" "$T/before"'

# --- P11_KIT_DEBUG=all
doctor P11_KIT_DEBUG=all
tap_check "P11_KIT_DEBUG=all: exit 1" test $rc = 1
tap_check "... the problem and the fix" has \
    "PROBLEM  p11kit-logging    environment: P11_KIT_DEBUG=all is set: p11-kit prints the PKCS#11 calls" \
    "fix: unset P11_KIT_DEBUG"

# --- log-calls: yes in a user module file
mkdir -p "$HOME/.config/pkcs11/modules"
printf '%s\n' "module: $SOFTHSM_MODULE" "log-calls: yes" \
    >"$HOME/.config/pkcs11/modules/noisy.module"
doctor
rm -r "$HOME/.config/pkcs11"
tap_check "log-calls: yes in a module file: exit 1" test $rc = 1
tap_check "... the file, the problem and the fix" has \
    "$HOME/.config/pkcs11/modules/noisy.module: log-calls: yes makes p11-kit log every PKCS#11 call" \
    "fix: remove the log-calls line"

# --- the browser not registered
"$P11ENROLL" browser setup --undo >&2 2>&1
doctor
tap_check "browser not registered: exit 1" test $rc = 1
tap_check "... the problem and the fix" has \
    "PROBLEM  browser           chromium $HOME/.pki/nssdb: p11-kit-proxy is not registered" \
    "fix: p11enroll browser setup, then restart the browser"
"$P11ENROLL" browser setup >&2 2>&1

# --- a Flatpak browser: a warning only
mkdir -p "$HOME/.var/app/org.chromium.Chromium"
doctor
rm -r "$HOME/.var"
tap_check "a Flatpak Chromium: a warning, exit 0" eval \
    '[ $rc = 0 ] && [ "$(count warning sandboxed-browser)" = 1 ]'
tap_check "... saying why and what to use" has \
    "Chromium (Flatpak) is installed ($HOME/.var/app/org.chromium.Chromium): its sandbox does not load the host's PKCS#11 modules" \
    "fix: use the distribution's browser package"

# --- the certificate without its key
id=$("$P11ENROLL" --json list | python3 -c \
    'import json,sys; print(json.load(sys.stdin)["credentials"][0]["id"])')
for type in privkey pubkey; do
	pkcs11-tool --module "$SOFTHSM_MODULE" --token-label p11e-doctor \
	    --login --pin "$PIN" --delete-object --type $type --id "$id" >&2 2>&1
done
doctor
tap_check "certificate without key: exit 1" test $rc = 1
tap_check "... the problem and the fix" has \
    "PROBLEM  pairing           $CRED: the certificate is on the token, but no key with its id is" \
    "fix: enroll again"
tap_check "... in the JSON too" test "$(count problem pairing)" = 1

# --- the token absent: the agent sees an empty token directory
agent_stop
mkdir -p "$T/empty-tokens"
printf '%s\n' "directories.tokendir = $T/empty-tokens" \
    "objectstore.backend = file" >"$T/empty.conf"
doctor SOFTHSM2_CONF="$T/empty.conf"
agent_stop
tap_check "token absent: exit 1" test $rc = 1
tap_check "... the problem and the fix" has \
    "PROBLEM  token             $CRED: the token 'p11e-doctor' (serial $SOFTHSM_SERIAL) is not present" \
    "fix: insert the token"
tap_check "... no pairing check without the token" \
    test "$(count ok pairing)$(count problem pairing)" = 00

# --- the server stopped
kill "$RA_PID"
wait "$RA_PID" 2>/dev/null
doctor
tap_check "server stopped: exit 1" test $rc = 1
tap_check "... the problem and the fix" has \
    "PROBLEM  server            ra: " \
    "fix: check the network (and proxy) and that the service is running"
tap_check "... one problem (with the key problem above): server" eval \
    '[ "$(count problem server)" = 1 ] && [ "$(count ok server)" = 0 ]'
tap_check "usage: doctor takes only --json" eval \
    '"$P11ENROLL" doctor --bogus 2>"$T/usage.err"; [ $? = 2 ] &&
    grep -q "usage: p11enroll doctor \[--json\]" "$T/usage.err"'

tap_done
