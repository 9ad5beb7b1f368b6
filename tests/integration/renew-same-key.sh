#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Same-key renewal (issue 7): a service configured with renew-key = same
# renews with the current key: no key is generated, the request carries
# the current public key.  p11enroll-ra certifies a key once (409
# key-in-use, "generate a new key"), so the renewal is refused: the
# credential stays INSTALLED with its certificate, the error says what
# to change, the hook hears renewal-failed, the token keeps exactly one
# key and one certificate, the RA one certificate.  With renew-key
# removed, p11enroll renew renews with a new key.  The RA's window is
# open at issuance (validity 90 s, renew-before 90 s, backdate 60 s).

. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/softhsm.sh"
. "$top_srcdir/tests/lib/agent.sh"
. "$top_srcdir/tests/lib/ra.sh"
. "$top_srcdir/tests/lib/enroll.sh"
. "$top_srcdir/tests/lib/cred.sh"

cred_require

tap_plan 10

cred_setup p11e-same 'Pin-SameKey-9a04c3' \
    "[policy]" "validity = 90" "renew-before = 90" "backdate = 60"
cat >"$T/hook" <<EOF
#!/bin/sh
echo "\$1 \$P11ENROLL_CREDENTIAL" >>'$T/events.log'
EOF
chmod 0755 "$T/hook"
cat >"$P11ENROLL_CONF" <<EOF
[notify]
hook = $T/hook

[service ra]
url = $URL
server-pin = $SPIN
token = $TOK?pin-source=file:$T/pin
renew-key = same
EOF

C1=$(cred_enroll S0001 ra "$TOK")
tap_check "enrolled" test -n "$C1"
[ -n "$C1" ] || tap_bail "enrollment failed"
ID1=$(cred_field "$C1" id)
SER1=$(cred_field "$C1" serial)

# the agent renews at once, with the same key: refused
end=$(($(date +%s) + 60))
until grep -q "$C1: renewal refused" "$LOG" 2>/dev/null; do
	[ "$(date +%s)" -lt $end ] || break
	sleep 0.5
done
tap_check "the renewal used the same key and the RA refused it (key-in-use)" \
    grep -q "$C1: renewal refused: the server does not certify the same key again" "$LOG"
tap_check "the credential stays INSTALLED with its certificate" \
    test "$(cred_field "$C1" state)/$(cred_field "$C1" serial)/$(cred_field "$C1" id)" = "INSTALLED/$SER1/$ID1"
cred_field "$C1" last_error.message >"$T/msg"
tap_check "the error says what to change" \
    grep -q "remove 'renew-key = same' from the service's configuration" "$T/msg"
tap_check "the hook heard renewal-failed" grep -qx "renewal-failed $C1" "$T/events.log"
tap_check "no key was generated: one key pair, one certificate on the token" \
    test "$(en_count "$TOK" private-key)/$(en_count "$TOK" public-key)/$(en_count "$TOK" certificate)" = 1/1/1
tap_check "the RA issued one certificate" \
    test "$(sqlite3 "$D/ra.db" "SELECT count(*) FROM certificates")" = 1

# without renew-key = same (the agent reads it at start): a new key
sed -i '/^renew-key = same$/d' "$P11ENROLL_CONF"
agent_stop
printf '%s\n' "$PIN" | "$P11ENROLL" --pin-stdin renew --credential "$C1" \
    >"$T/renew.out" 2>&1
rc=$?
cat "$T/renew.out" >&2
tap_check "renew-key removed: p11enroll renew renews" sh -c \
    "test $rc = 0 && grep -q '^renewed: $C1' '$T/renew.out'"
tap_check "with a new key and certificate" \
    test "$(cred_field "$C1" id)" != "$ID1" -a "$(cred_field "$C1" serial)" != "$SER1"
tap_check "the hook heard renewed" grep -qx "renewed $C1" "$T/events.log"
tap_done
