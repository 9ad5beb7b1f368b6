#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# The token commands (tests/lib/tokensuite.sh) on a fresh SoftHSM2 token,
# as root, through the system's p11-kit registration of softhsm2.

. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/softhsm.sh"
. "$top_srcdir/tests/lib/agent.sh"
. "$top_srcdir/tests/lib/pki.sh"
. "$top_srcdir/tests/lib/tokensuite.sh"

command -v softhsm2-util >/dev/null 2>&1 ||
    tap_skip_all "softhsm2-util not installed (Debian package softhsm2)"
command -v python3 >/dev/null 2>&1 ||
    tap_skip_all "python3 not installed (Debian package python3)"
[ -r /usr/share/p11-kit/modules/softhsm2.module ] ||
    [ -r /etc/pkcs11/modules/softhsm2.module ] ||
    tap_skip_all "softhsm2 is not registered with p11-kit"

tap_tmpdir T
agent_env "$T"
# The token goes after the agent, so the agent stops first at exit.
softhsm_setup p11e-suite-a >&2 || tap_bail "cannot create a SoftHSM2 token"
softhsm2-util --init-token --free --label p11e-suite-b --pin 1111 \
    --so-pin 12345678 >&2 || tap_bail "cannot create a second token"
pki_setup "$T/pki" >&2 || tap_bail "cannot make the test CAs"
mkdir "$T/work"

TS_NAME=softhsm
TS_URI="pkcs11:token=p11e-suite-a"
TS_LABEL=p11e-suite-a
TS_PIN=$SOFTHSM_PIN
TS_KEYTYPES="ec-p256 ec-p384 rsa-2048 rsa-3072 rsa-4096"
TS_UNSUPPORTED=
b_serial=$(softhsm2-util --show-slots | awk '
    /Serial number:/ { s = $3 } /Label:/ && $2 == "p11e-suite-b" { print s; exit }')
TS_OTHER_URI="pkcs11:model=SoftHSM%20v2;manufacturer=SoftHSM%20project;serial=$b_serial;token=p11e-suite-b"
TS_AMBIG_URI="pkcs11:model=SoftHSM%20v2;manufacturer=SoftHSM%20project"
TS_DIR=$T/work
TS_AGENT_LOG=$XDG_RUNTIME_DIR/p11enroll/agent.log

tokensuite_run
tap_plan "$tap_n"
tap_done
