#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# The token commands (tests/lib/tokensuite.sh) on a second real token:
# tpm2-pkcs11 on swtpm (tests/lib/tpm2token.sh), as root, through the
# system's p11-kit registration of tpm2_pkcs11.  Every tpm2-pkcs11 token
# reports serial 0000000000000000, so tokens are told apart by label.

. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/agent.sh"
. "$top_srcdir/tests/lib/pki.sh"
. "$top_srcdir/tests/lib/tpm2token.sh"
. "$top_srcdir/tests/lib/tokensuite.sh"

reason=$(tpm2token_check) || tap_skip_all "$reason"
command -v python3 >/dev/null 2>&1 ||
    tap_skip_all "python3 not installed (Debian package python3)"

tap_tmpdir T
agent_env "$T"
tpm2token_setup p11e-tpm2-a 2>"$T/setup.err" ||
    tap_skip_all "tpm2token_setup: $(head -n 1 "$T/setup.err")"
# The agent has the fixture's environment: stop it before the daemons.
trap 'agent_stop; tpm2token_teardown; tap_run_cleanups' EXIT
TMPDIR=$TPM2TOKEN_DIR/tmp tpm2_ptool addtoken --pid=1 --label=p11e-tpm2-b \
    --userpin=1111 --sopin=12345678 >&2 ||
    tap_bail "cannot add a second tpm2 token"
pki_setup "$T/pki" >&2 || tap_bail "cannot make the test CAs"
mkdir "$T/work"

TS_NAME=tpm2
TS_URI="pkcs11:token=p11e-tpm2-a"
TS_LABEL=p11e-tpm2-a
TS_PIN=$TPM2TOKEN_PIN
TS_KEYTYPES="ec-p256 ec-p384 rsa-2048 rsa-3072"
# tpm2-pkcs11 1.9 lists RSA key pair generation up to 3072 bits, but
# refuses a sign-only RSA template (CKA_DECRYPT false: "Failed to add
# missing rsa attrs", CKR_GENERAL_ERROR), and p11enroll does not make RSA
# keys that can decrypt (DESIGN §5): a token limit, see pkcs11/keys.c.
TS_KEYGEN="ec-p256 ec-p384"
TS_KEYGEN_SKIP="tpm2-pkcs11 1.9 refuses sign-only RSA key templates"
TS_UNSUPPORTED=rsa-4096
TS_OTHER_URI=$("$P11ENROLL" --json tokens "pkcs11:token=p11e-tpm2-b" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["tokens"][0]["uri"])')
TS_AMBIG_URI="pkcs11:manufacturer=IBM;serial=$TPM2TOKEN_SERIAL"
TS_DIR=$T/work
TS_AGENT_LOG=$XDG_RUNTIME_DIR/p11enroll/agent.log

tokensuite_run
tap_plan "$tap_n"
tap_done
