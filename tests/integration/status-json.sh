#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# p11enroll --json status for inventory scripts: its output validates
# against doc/status.schema.json (format 1) with an enrolled credential and
# after that credential's certificate is revoked; the exit status of
# status and list follows p11enroll(1) EXIT STATUS: 0 when all is well,
# 6 when a credential needs an administrator's reissue, and the most
# urgent one wins over an unreadable record (1).  Nothing changes.

. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/softhsm.sh"
. "$top_srcdir/tests/lib/agent.sh"
. "$top_srcdir/tests/lib/ra.sh"
. "$top_srcdir/tests/lib/enroll.sh"

for c in softhsm2-util oathtool python3 sqlite3 openssl curl; do
	command -v $c >/dev/null 2>&1 || tap_skip_all "$c not installed"
done
python3 -c 'import jsonschema' 2>/dev/null ||
    tap_skip_all "python3-jsonschema not installed"

tap_plan 16

tap_tmpdir T
agent_env "$T"
PIN='Pin-Status-51c0e2'
softhsm_setup p11e-status "$PIN" >&2 || tap_bail "cannot create a SoftHSM2 token"
TOK=pkcs11:token=p11e-status
en_ra_start || { cat "$T/ra.log" >&2; tap_bail "p11enroll-ra serve did not start"; }
en_user S0001 || tap_bail "user add failed"

# valid FILE: FILE validates against the schema
valid()
{
	python3 -c '
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
jsonschema.Draft202012Validator(schema).validate(json.load(open(sys.argv[2])))' \
	    "$top_srcdir/doc/status.schema.json" "$1"
}

# member FILE EXPR: a Python expression over the output (o)
member()
{
	python3 -c 'import json, sys; o = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

"$P11ENROLL" --json status >"$T/s0.json" 2>"$T/s0.err"
rc=$?
tap_check "no credential: status --json exits 0" [ "$rc" = 0 ]
tap_check "... and validates against doc/status.schema.json" valid "$T/s0.json"

en_enroll S0001 "$TOK" >"$T/enroll.out" 2>&1 || cat "$T/enroll.out" >&2
"$P11ENROLL" --json status >"$T/s1.json" 2>"$T/s1.err"
rc=$?
tap_check "enrolled: status --json exits 0" [ "$rc" = 0 ]
tap_check "... validates against the schema" valid "$T/s1.json"
tap_check "... format 1, one INSTALLED credential with the token and the validity" \
    [ "$(member "$T/s1.json" 'o["format"], [(c["state"], c["token_label"], c["not_after"] > c["not_before"]) for c in o["credentials"]]')" = "(1, [('INSTALLED', 'p11e-status', True)])" ]
"$P11ENROLL" status >"$T/s1.txt" 2>&1
tap_check "status (text) exits 0 too" [ $? = 0 ]

# the certificate revoked at the RA: the renewal is refused
CRED=$(member "$T/s1.json" 'o["credentials"][0]["credential"]')
SERIAL=$(member "$T/s1.json" 'o["credentials"][0]["serial"]')
"$RA" cert revoke "$SERIAL" >/dev/null 2>&1 || tap_diag "revoke failed"
printf '%s\n' "$PIN" | "$P11ENROLL" --pin-stdin renew --credential "$CRED" \
    --now >"$T/renew.out" 2>&1
tap_check "renewal of the revoked certificate: exit 6" [ $? = 6 ]
"$P11ENROLL" --json status >"$T/s2.json" 2>"$T/s2.err"
rc=$?
tap_check "status --json then exits 6 (needs an administrator's reissue)" [ "$rc" = 6 ]
tap_check "... state REVOKED with the error CertRevoked" [ "$(member "$T/s2.json" \
    '[(c["state"], c["last_error"]["name"]) for c in o["credentials"]]')" = "[('REVOKED', 'CertRevoked')]" ]
tap_check "... and validates against the schema" valid "$T/s2.json"
"$P11ENROLL" list >/dev/null 2>&1
tap_check "list exits 6 as well" [ $? = 6 ]

# an unreadable record: NEEDS_OPERATOR, but the reissue is more urgent
state=$XDG_STATE_HOME/p11enroll/credentials
before=$(find "$XDG_STATE_HOME" -type f | sort | xargs md5sum)
printf 'not json' >"$state/c-0000000000000000.json"
"$P11ENROLL" --json status >"$T/s3.json" 2>"$T/s3.err"
rc=$?
tap_check "with an unreadable record too: still 6 (the most urgent)" [ "$rc" = 6 ]
tap_check "... the record listed as NEEDS_OPERATOR, the output valid" \
    grep -q NEEDS_OPERATOR "$T/s3.json"
rm -f "$state/c-0000000000000000.json"
mv "$state/$CRED.json" "$T/cred.json"
printf 'not json' >"$state/c-0000000000000000.json"
"$P11ENROLL" status >"$T/s4.txt" 2>&1
tap_check "only the unreadable record: exit 1 (an operator must look)" [ $? = 1 ]
rm -f "$state/c-0000000000000000.json"
mv "$T/cred.json" "$state/$CRED.json"
tap_check "the output with the unreadable record validates" valid "$T/s3.json"
after=$(find "$XDG_STATE_HOME" -type f | sort | xargs md5sum)
tap_check "status and list changed no state file" [ "$before" = "$after" ]

tap_done
