#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# p11enroll browser setup without a browser: the user's NSS databases
# (Chromium's ~/.pki/nssdb, Firefox profiles from profiles.ini) and the
# system policies (--system --root DIR).  Idempotent, --undo removes only
# our module, other modules are left alone, and every refusal prints its
# reason and changes nothing.

. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/agent.sh"
. "$top_srcdir/tests/lib/softhsm.sh"

for t in modutil certutil; do
	command -v $t >/dev/null 2>&1 ||
	    tap_skip_all "$t not installed (Debian package libnss3-tools)"
done
command -v python3 >/dev/null 2>&1 ||
    tap_skip_all "python3 not installed (Debian package python3)"
PROXY=$(pkg-config --variable=proxy_module p11-kit-1 2>/dev/null)
[ -r "$PROXY" ] || tap_skip_all "p11-kit-proxy not found (Debian package p11-kit-modules)"

tap_plan 37

tap_tmpdir T
chmod 0755 "$T"
HOME=$T/home
FF=$HOME/.mozilla/firefox
mkdir -p "$HOME" "$FF/a.default" "$T/abs.profile" "$FF/c.new"
export HOME
# A module that is not ours, in the second profile.
softhsm_setup p11e-other >&2 || tap_bail "cannot create a SoftHSM2 token"
NAME="p11-kit-proxy (p11enroll)"
CDB=$HOME/.pki/nssdb
certutil -N -d "sql:$FF/a.default" --empty-password >&2
certutil -N -d "sql:$T/abs.profile" --empty-password >&2
modutil -dbdir "sql:$T/abs.profile" -add "Other token" \
    -libfile "$SOFTHSM_MODULE" -force </dev/null >/dev/null 2>&1
cat >"$FF/profiles.ini" <<EOF
[Install4F96D1932A9F858E]
Default=a.default
Locked=1

[Profile0]
Name=default
IsRelative=1
Path=a.default
Default=1

[Profile1]
Name=absolute
IsRelative=0
Path=$T/abs.profile

[Profile2]
Name=never-started
IsRelative=1
Path=c.new

[Profile3]
Name=gone
IsRelative=1
Path=gone.profile

[General]
StartWithLastProfile=1
Version=2
EOF

# run ARGS...: p11enroll, output in $out (both streams), status in $rc,
# standard output alone in $T/stdout.
run()
{
	"$P11ENROLL" "$@" </dev/null >"$T/stdout" 2>"$T/stderr"
	rc=$?
	out=$(cat "$T/stdout" "$T/stderr")
	printf '%s\n' "--- p11enroll $* (exit $rc)" "$out" >&2
}
# expect DESC RC TEXT...: $rc is RC and $out holds every TEXT.
expect()
{
	e_desc=$1
	e_rc=$2
	shift 2
	e_ok=true
	[ "$rc" = "$e_rc" ] || e_ok=false
	for e_t in "$@"; do
		case "$out" in
		*"$e_t"*) ;;
		*)
			e_ok=false
			tap_diag "missing: $e_t"
			;;
		esac
	done
	if $e_ok; then
		tap_ok "$e_desc"
	else
		tap_fail "$e_desc"
		tap_diag "got exit $rc (want $e_rc): $out"
	fi
}
# snap DIR...: every file and its contents.
snap()
{
	find "$@" -print 2>/dev/null | sort
	find "$@" -type f -exec sha256sum {} + 2>/dev/null | sort
}
unchanged()
{
	snap "$HOME" "$T/abs.profile" >"$T/after"
	if cmp -s "$1" "$T/after"; then
		tap_ok "$2"
	else
		tap_fail "$2"
		diff "$1" "$T/after" | sed 's/^/# /'
	fi
}
modules()
{
	modutil -dbdir "sql:$1" -rawlist 2>/dev/null
}
json()
{
	python3 -c 'import json, sys
j = json.load(open(sys.argv[1]))
sys.exit(0 if eval(sys.argv[2]) else 1)' "$T/stdout" "$1"
}

# --- refusals before anything exists
snap "$HOME" "$T/abs.profile" >"$T/s0"
mkdir "$T/bin"
ln -s "$(command -v certutil)" "$T/bin/certutil"
PATH=$T/bin "$P11ENROLL" browser setup </dev/null >"$T/stdout" 2>"$T/stderr"
rc=$?
out=$(cat "$T/stdout" "$T/stderr")
expect "no modutil: says which package to install" 1 \
    "p11enroll: error: modutil and certutil (NSS tools) not found: install the Debian package libnss3-tools"
unchanged "$T/s0" "... and changes nothing"

mv "$FF/profiles.ini" "$T/profiles.ini"
mkdir "$FF/profiles.ini"
run browser setup
expect "unreadable profiles.ini: the reason, nothing changed" 1 \
    "p11enroll: error: cannot read $FF/profiles.ini: Is a directory" \
    "p11enroll: error: nothing changed"
rmdir "$FF/profiles.ini"
mv "$T/profiles.ini" "$FF/profiles.ini"
unchanged "$T/s0" "... the Chromium database was not created"

if command -v setpriv >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
	chown -R 65534:65534 "$HOME"
	chmod 0755 "$T" "$T/bin"
	chmod 0000 "$FF/profiles.ini"
	HOME=$HOME setpriv --reuid=65534 --regid=65534 --clear-groups \
	    "$P11ENROLL" browser setup </dev/null >"$T/stdout" 2>"$T/stderr"
	rc=$?
	out=$(cat "$T/stdout" "$T/stderr")
	expect "profiles.ini without read permission: EACCES named" 1 \
	    "p11enroll: error: cannot read $FF/profiles.ini: Permission denied"
	chmod 0644 "$FF/profiles.ini"
	chown -R 0:0 "$HOME"
else
	tap_skip "profiles.ini without read permission" "needs root and setpriv"
fi
unchanged "$T/s0" "... nothing changed"

# A damaged database in one profile stops everything.
cp "$FF/a.default/cert9.db" "$T/cert9.good"
echo "not a database" >"$FF/a.default/cert9.db"
snap "$HOME" "$T/abs.profile" >"$T/s1"
run browser setup
expect "a damaged NSS database: named with NSS's reason" 1 \
    "firefox  $FF/a.default (profile default): FAILED: the NSS database cannot be opened (certutil exit 255: certutil: function failed: SEC_ERROR_BAD_DATABASE" \
    "p11enroll: error: nothing changed"
unchanged "$T/s1" "... and no database changed (not even Chromium's)"
cp "$T/cert9.good" "$FF/a.default/cert9.db"

# A profile Firefox is running with.
snap "$HOME" "$T/abs.profile" >"$T/s2"
ln -s "127.0.0.1:+$$" "$T/abs.profile/lock"
run browser setup
expect "Firefox running with a profile: refused, nothing changed" 1 \
    "FAILED: Firefox is running with this profile ($T/abs.profile/lock exists): quit Firefox and run this again" \
    "p11enroll: error: nothing changed"
rm "$T/abs.profile/lock"
unchanged "$T/s2" "... no database changed"
# The lock Firefox leaves behind when it exits names a process that is
# gone: not a running Firefox.
dead=$(sh -c 'echo $$')
ln -s "127.0.0.1:+$dead" "$T/abs.profile/lock"
run browser setup --dry-run
rm "$T/abs.profile/lock"
tap_check "a lock left by an exited Firefox does not count as running" eval \
    '[ $rc = 0 ] && case "$out" in *"is running"*) false ;; *) true ;; esac'

# --- dry run, then the real thing
run browser setup --dry-run
expect "--dry-run says what it would do" 0 \
    "chromium $CDB: would add (would create the database)" \
    "firefox  $FF/a.default (profile default): would add" \
    "firefox  $FF/c.new (profile never-started): skipped: no cert9.db yet: start Firefox once with this profile, then run this again" \
    "firefox  $FF/gone.profile (profile gone): skipped: the profile directory does not exist"
unchanged "$T/s2" "... and changes nothing"

run --json browser setup
tap_check "setup: JSON report, Chromium database created, 3 added, 2 skipped" json \
    'j["changed"] and j["scope"] == "user" and j["module"]["library"] == "'"$PROXY"'" and [d["result"] for d in j["databases"]] == ["added", "added", "added", "skipped", "skipped"] and j["databases"][0]["created"]'
tap_check "... Chromium's database is 0700" \
    eval '[ "$(stat -c %a "$CDB")" = 700 ]'
ok=true
for d in "$CDB" "$FF/a.default" "$T/abs.profile"; do
	m=$(modules "$d")
	case "$m" in
	*"library=\"$PROXY\" name=\"$NAME\""*) ;;
	*) ok=false ;;
	esac
done
tap_check "... each database has p11-kit-proxy under our name" $ok
tap_check "... the other module is still there" \
    eval 'modules "$T/abs.profile" | grep -q "name=\"Other token\""'
tap_check "... no certificate was added or trusted" \
    eval '[ -z "$(certutil -L -d "sql:$CDB" -h internal | sed 1,4d)" ]'

snap "$HOME" "$T/abs.profile" >"$T/s3"
run browser setup
expect "setup again: already present everywhere" 0 \
    "chromium $CDB: already present as \"$NAME\"" \
    "firefox  $T/abs.profile (profile absolute): already present as \"$NAME\""
unchanged "$T/s3" "... and nothing changed"

# The proxy already registered by someone else, under another name.
modutil -dbdir "sql:$CDB" -delete "$NAME" -force </dev/null >/dev/null 2>&1
modutil -dbdir "sql:$CDB" -add "p11-kit-proxy" -libfile "$PROXY" -force \
    </dev/null >/dev/null 2>&1
run browser setup
expect "the proxy under another name counts as present" 0 \
    "chromium $CDB: already present as \"p11-kit-proxy\""
tap_check "... it is not added twice" \
    eval '[ "$(modules "$CDB" | grep -c "$PROXY")" = 1 ]'

run browser setup --undo
expect "undo: removes our module" 0 \
    "chromium $CDB: not present, nothing to remove" \
    "firefox  $FF/a.default (profile default): removed" \
    "firefox  $T/abs.profile (profile absolute): removed"
tap_check "... leaves the proxy someone else registered" \
    eval 'modules "$CDB" | grep -q "name=\"p11-kit-proxy\""'
tap_check "... and the other module" \
    eval 'modules "$T/abs.profile" | grep -q "name=\"Other token\"" &&
    ! modules "$T/abs.profile" | grep -q "$PROXY"'
snap "$HOME" "$T/abs.profile" >"$T/s4"
run browser setup --undo
expect "undo again: nothing to remove" 0 \
    "firefox  $FF/a.default (profile default): not present, nothing to remove"
unchanged "$T/s4" "... nothing changed"

# --- system policies, under --root
R=$T/root
PJ=$R/etc/firefox/policies/policies.json
CJ=$R/etc/chromium/policies/managed/p11enroll.json
run browser setup --system --root "$R" --url "https://bank.example"
expect "--url without --issuer-cn: usage error" 2 \
    "p11enroll: error: --url needs --issuer-cn"
run browser setup --system --root "$R"
expect "--system: Firefox policy written" 0 \
    "firefox  $PJ: added"
tap_check "... SecurityDevices.Add names the proxy; no Chromium file" \
    eval 'python3 -c "import json,sys; j=json.load(open(sys.argv[1])); sys.exit(j != {\"policies\": {\"SecurityDevices\": {\"Add\": {\"$NAME\": \"$PROXY\"}}}})" "$PJ" && [ ! -e "$CJ" ]'
snap "$HOME" "$T/abs.profile" >"$T/s5"
cat >"$PJ" <<EOF
{"policies": {"DisableTelemetry": true,
  "Certificates": {"Install": ["/etc/ssl/bank-server-ca.pem"]},
  "SecurityDevices": {"Add": {"Smart card": "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"}}},
 "x-comment": "kept"}
EOF
run --json browser setup --system --root "$R" --url "https://bank.example" \
    --issuer-cn "p11enroll test client CA"
tap_check "--system merges into an existing policies.json, keeps its keys" \
    python3 -c 'import json, sys
j = json.load(open(sys.argv[1]))
p = j["policies"]
sys.exit(not (j["x-comment"] == "kept" and p["DisableTelemetry"] is True and
    p["Certificates"] == {"Install": ["/etc/ssl/bank-server-ca.pem"]} and
    p["SecurityDevices"]["Add"] == {"Smart card": "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so",
        sys.argv[2]: sys.argv[3]}))' "$PJ" "$NAME" "$PROXY"
tap_check "... and writes the Chromium auto-selection policy" \
    python3 -c 'import json, sys
j = json.load(open(sys.argv[1]))
rule = json.loads(j["AutoSelectCertificateForUrls"][0])
sys.exit(rule != {"pattern": "https://bank.example",
    "filter": {"ISSUER": {"CN": "p11enroll test client CA"}}})' "$CJ"
unchanged "$T/s5" "--system does not touch the user's NSS databases"
cp "$PJ" "$T/pj.before"
printf '{"policies": {,}}\n' >"$T/bad.json"
cp "$T/bad.json" "$PJ"
run browser setup --system --root "$R"
expect "--system on a policies.json that is not JSON: refused with the place" 1 \
    "firefox  $PJ: FAILED: not valid JSON: $PJ:1:15:" \
    "p11enroll: error: nothing changed"
tap_check "... the file is left as it was" cmp -s "$T/bad.json" "$PJ"
cp "$T/pj.before" "$PJ"
run browser setup --system --root "$R" --undo
expect "--system --undo removes our entry and our Chromium file" 0 \
    "firefox  $PJ: removed" "chromium $CJ: removed"
tap_check "... keeping the rest of policies.json" \
    python3 -c 'import json, sys
j = json.load(open(sys.argv[1]))
sys.exit(j["policies"]["SecurityDevices"] != {"Add": {"Smart card": "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"}} or
    j["x-comment"] != "kept" or not j["policies"]["DisableTelemetry"])' "$PJ"

tap_done
