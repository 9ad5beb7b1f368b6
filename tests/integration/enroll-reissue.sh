#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# A new certificate for the same user and service (a reissue: a new
# acquisition window after the first certificate) replaces the earlier
# one in the agent: on the same token its key and certificate are
# removed once the new pair is verified there, so that a browser no
# longer offers it; on another token they stay (the agent logs where,
# and `p11enroll token delete` removes them).  Either way the earlier
# record is retired and the CA certificate is not touched.  The window is
# opened in the RA's database (the administrator's reissue is the seed
# scenario's: seed-scenario.sh).

. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/softhsm.sh"
. "$top_srcdir/tests/lib/agent.sh"
. "$top_srcdir/tests/lib/ra.sh"
. "$top_srcdir/tests/lib/enroll.sh"

for c in softhsm2-util oathtool python3 sqlite3 curl; do
	command -v $c >/dev/null 2>&1 || tap_skip_all "$c not installed"
done
"$RA" --help 2>/dev/null | grep -q '^  serve' ||
    tap_skip_all "p11enroll-ra serve not built"

tap_plan 10

tap_tmpdir T
agent_env "$T"
PIN=1234
softhsm_setup p11e-reissue-a "$PIN" >&2 || tap_bail "cannot create a SoftHSM2 token"
softhsm2-util --init-token --free --label p11e-reissue-b --pin "$PIN" \
    --so-pin 12345678 >&2 || tap_bail "cannot create a second token"
A=pkcs11:token=p11e-reissue-a
B=pkcs11:token=p11e-reissue-b
en_ra_start || { cat "$T/ra.log" >&2; tap_bail "serve did not start"; }
LOG=$XDG_RUNTIME_DIR/p11enroll/agent.log

# window USER: a new acquisition window (reason lost), as a reissue opens
window()
{
	sqlite3 "$D/ra.db" "INSERT INTO windows (user, opened, closes, reason, opened_by) SELECT id, strftime('%s', 'now'), strftime('%s', 'now') + 3600, 'lost', 'test' FROM users WHERE user_id = '$1'"
}
# cred USER: the credential names the agent tracks for USER
cred()
{
	"$P11ENROLL" --no-autostart --json list 2>/dev/null | python3 -c '
import json, sys
print(" ".join(c["credential"] for c in json.load(sys.stdin)["credentials"]
               if c.get("user_id") == sys.argv[1]))' "$1"
}
# ids URI: the CKA_IDs of the leaf certificates on the token
ids()
{
	printf '%s\n' "$PIN" | "$P11ENROLL" --json --pin-stdin token objects \
	    --login "$1" 2>/dev/null | python3 -c '
import json, sys
print(" ".join(sorted(o["id"] for o in json.load(sys.stdin)["objects"]
                      if o["kind"] == "certificate" and not o.get("authority"))))'
}
# key_id CRED: the key id of a tracked credential
key_id()
{
	"$P11ENROLL" --no-autostart --json list 2>/dev/null | python3 -c '
import json, sys
print([c["id"] for c in json.load(sys.stdin)["credentials"]
       if c["credential"] == sys.argv[1]][0])' "$1"
}

# reissue USER URI1 URI2: USER's first certificate onto URI1, a new
# window, the second onto URI2: $first, $idfirst, $second and $rc (of the
# second enrollment)
reissue()
{
	en_user "$1" || tap_bail "cannot add $1"
	en_enroll "$1" "$2" >"$T/$1.1.out" 2>&1 ||
	    { cat "$T/$1.1.out" >&2; tap_bail "$1's first enrollment failed"; }
	first=$(cred "$1")
	idfirst=$(key_id "$first")
	window "$1"
	E_OTP_LATER=1 en_enroll "$1" "$3" >"$T/$1.2.out" 2>&1
	rc=$?
	cat "$T/$1.2.out" >&2
	second=$(cred "$1")
}

# --- the same token
reissue R0001 "$A" "$A"
c1=$first
c2=$second
id2=$(key_id "$c2")
tap_check "a second certificate for R0001 on the same token" \
    sh -c "test $rc = 0 && test -n '$c2' && test '$c2' != '$c1'"
tap_check "the first record is retired: the agent tracks the new one only" \
    test "$c2" = "$(cred R0001)"
tap_check "the first key and certificate left the token; the new pair is there" \
    test "$(ids "$A")" = "$id2"
tap_check "... 3 objects (private key, public key, certificate), logged" \
    grep -q "$c1: its key and certificate are removed from the token (3 objects)" "$LOG"
tap_check "the CA certificate stays (one)" test "$(en_count "$A" ca)" = 1

# --- another token
reissue R0002 "$A" "$B"
c3=$first
id3=$idfirst
c4=$second
idsA=$(ids "$A")
tap_check "R0002's new certificate on the other token" \
    sh -c "test $rc = 0 && test -n '$c4' && test '$c4' != '$c3' &&
	test '$(ids "$B")' = '$(key_id "$c4")'"
tap_check "the first record is retired" test "$c4" = "$(cred R0002)"
tap_check "its key and certificate stay on the first token, untouched" \
    sh -c "echo '$idsA' | grep -q '$id3' && test '$(en_count "$A" private-key)' = 2"
tap_check "... and the log says where and what removes them" \
    grep -q "$c3: its key and certificate (id $id3) stay on the token with serial [0-9a-f]* (p11enroll token delete removes them)" "$LOG"
tap_check "R0001's pair on the first token is not touched by R0002's" \
    sh -c "echo '$idsA' | grep -q '$id2'"
tap_done
