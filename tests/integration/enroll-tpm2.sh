#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# User enrollment end to end on the second real token: tpm2-pkcs11 on
# swtpm (tests/lib/tpm2token.sh), an EC key.  Its tokens all report the
# serial 0000000000000000, so the token is chosen by label, and a second
# token of the same TPM must be left alone.  Then kill -9 after the
# certificate was journaled and a resume: one key pair, one certificate.

. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/agent.sh"
. "$top_srcdir/tests/lib/ra.sh"
. "$top_srcdir/tests/lib/enroll.sh"
. "$top_srcdir/tests/lib/tpm2token.sh"

reason=$(tpm2token_check) || tap_skip_all "$reason"
for c in oathtool python3 sqlite3 openssl curl; do
	command -v $c >/dev/null 2>&1 || tap_skip_all "$c not installed"
done
"$RA" --help 2>/dev/null | grep -q '^  serve' ||
    tap_skip_all "p11enroll-ra serve not built"

tap_plan 11

tap_tmpdir T
agent_env "$T"
PIN='Pin-Tpm2-4c1b'
tpm2token_setup p11e-tpm2-e "$PIN" 2>"$T/setup.err" ||
    tap_skip_all "tpm2token_setup: $(head -n 1 "$T/setup.err")"
trap 'agent_stop; tpm2token_teardown; tap_run_cleanups' EXIT
TMPDIR=$TPM2TOKEN_DIR/tmp tpm2_ptool addtoken --pid=1 --label=p11e-tpm2-f \
    --userpin="$PIN" --sopin=12345678 >&2 ||
    tap_bail "cannot add a second tpm2 token"
en_ra_start || { cat "$T/ra.log" >&2; tap_bail "p11enroll-ra serve did not start"; }
en_user T0001 && en_user T0002 || tap_bail "user add failed"

URI=pkcs11:token=p11e-tpm2-e
t0=$(date +%s%N)
en_enroll T0001 "$URI" >"$T/out" 2>&1
rc=$?
t1=$(date +%s%N)
cat "$T/out" >&2
tap_diag "enrollment on tpm2-pkcs11: $(((t1 - t0) / 1000000)) ms"
tap_check "enroll on the TPM token succeeds" test $rc = 0
tap_check "the token named in the result is the one chosen by label" \
    grep -q 'token    pkcs11:.*token=p11e-tpm2-e' "$T/out"
printf '%s\n' "$PIN" | "$P11ENROLL" --json --pin-stdin token objects --login \
    "$URI" >"$T/objs.json" 2>/dev/null
tap_check "one EC private key, one leaf and the CA on the token" python3 -c '
import json, sys
o = json.load(open(sys.argv[1]))["objects"]
k = [x for x in o if x["kind"] == "private-key"]
leaf = [x for x in o if x["kind"] == "certificate" and not x.get("authority")]
ca = [x for x in o if x["kind"] == "certificate" and x.get("authority")]
assert len(k) == 1 and k[0]["key_type"].startswith("ec-"), k
assert len(leaf) == 1 and len(ca) == 1, o
' "$T/objs.json"
serial=$(python3 -c '
import json, sys
print([x for x in json.load(open(sys.argv[1]))["objects"] if x["kind"] == "certificate" and not x.get("authority")][0]["serial"].upper())' "$T/objs.json")
tap_check "the RA issued that certificate ($serial), once" \
    test "$(en_ra_serial T0001)" = "$serial"
tap_check "the other token of the TPM is untouched" \
    test "$(en_count pkcs11:token=p11e-tpm2-f private-key)" = 0
"$P11ENROLL" --json list >"$T/list.json" 2>&1
tap_check "list: INSTALLED, the token recorded with its label" python3 -c '
import json, sys
c = json.load(open(sys.argv[1]))["credentials"]
assert len(c) == 1 and c[0]["state"] == "INSTALLED", c
assert "token=p11e-tpm2-e" in json.dumps(c[0]), c[0]
' "$T/list.json"

# kill -9 once the certificate is journaled, then a re-run
agent_stop
en_enroll T0002 pkcs11:token=p11e-tpm2-f \
    P11ENROLL_CRASHPOINT=enroll-after-cert-journaled >"$T/out" 2>&1
rc=$?
cat "$T/out" >&2
tap_check "enroll-after-cert-journaled: the agent dies there" test $rc != 0
agent_stop
E_OTP_LATER=1 en_enroll T0002 pkcs11:token=p11e-tpm2-f >"$T/out" 2>&1
rc=$?
cat "$T/out" >&2
tap_check "a re-run finishes the enrollment" test $rc = 0
tap_check "exactly one key pair on the second token" sh -c \
    "test $(en_count pkcs11:token=p11e-tpm2-f private-key) = 1 && test $(en_count pkcs11:token=p11e-tpm2-f public-key) = 1"
tap_check "exactly one certificate there, and one issued by the RA" sh -c \
    "test $(en_count pkcs11:token=p11e-tpm2-f certificate) = 1 && test $(en_ra_serial T0002 | wc -l) = 1"
tap_check "the first token still has its one key and certificate" sh -c \
    "test $(en_count $URI private-key) = 1 && test $(en_count $URI certificate) = 1"

tap_done
