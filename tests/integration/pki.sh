#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# tests/lib/pki.sh: the two test CAs are separate, their chains verify,
# the server certificate names 127.0.0.1, ::1 and localhost, keys are 0600.

. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/pki.sh"

command -v openssl >/dev/null 2>&1 ||
    tap_skip_all "openssl not installed (Debian package openssl)"

tap_plan 16

tap_check "pki_setup makes both CAs" pki_setup

verify()
{
	openssl verify -x509_strict -purpose "$1" -CAfile "$2" "$3"
}

# A verification that must fail: also make sure openssl ran at all.
verify_fails()
{
	out=$(verify "$@" 2>&1)
	rc=$?
	printf '%s\n' "$out" >&2
	[ "$rc" -ne 0 ] && printf '%s\n' "$out" |
	    grep -q 'unable to get local issuer certificate'
}

tap_check "server chain verifies against the server CA" \
    verify sslserver "$PKI_SERVER_CA_CERT" "$PKI_SERVER_CERT"
tap_check "client chain verifies against the client CA" \
    verify sslclient "$PKI_CLIENT_CA_CERT" "$PKI_CLIENT_CERT"
tap_check "server cert does not verify against the client CA" \
    verify_fails sslserver "$PKI_CLIENT_CA_CERT" "$PKI_SERVER_CERT"
tap_check "client cert does not verify against the server CA" \
    verify_fails sslclient "$PKI_SERVER_CA_CERT" "$PKI_CLIENT_CERT"

# -purpose checks the EKU: each leaf is good for its own side only.
eku_refused()
{
	out=$(verify "$@" 2>&1)
	rc=$?
	printf '%s\n' "$out" >&2
	[ "$rc" -ne 0 ] && printf '%s\n' "$out" |
	    grep -q 'unsuitable certificate purpose'
}
tap_check "server cert is not a TLS client cert" \
    eku_refused sslclient "$PKI_SERVER_CA_CERT" "$PKI_SERVER_CERT"
tap_check "client cert is not a TLS server cert" \
    eku_refused sslserver "$PKI_CLIENT_CA_CERT" "$PKI_CLIENT_CERT"

# openssl x509 -checkip/-checkhost prints "does match" or "does NOT match".
matches()
{
	out=$(openssl x509 -noout -in "$PKI_SERVER_CERT" "$1" "$2" 2>&1)
	printf '%s\n' "$out" >&2
	printf '%s\n' "$out" | grep -q 'does match certificate'
}
tap_check "server SAN has IP 127.0.0.1" matches -checkip 127.0.0.1
tap_check "server SAN has IP ::1" matches -checkip ::1
tap_check "server SAN has DNS localhost" matches -checkhost localhost
tap_check "server SAN does not have example.com" \
    eval '! matches -checkhost example.com'

is_p256()
{
	openssl pkey -in "$1" -noout -text 2>&1 | grep -q 'prime256v1'
}
tap_check "server key is EC P-256" is_p256 "$PKI_SERVER_KEY"
tap_check "client key is EC P-256" is_p256 "$PKI_CLIENT_KEY"

mode_ok=yes
for k in "$PKI_SERVER_CA_KEY" "$PKI_SERVER_KEY" "$PKI_CLIENT_CA_KEY" \
    "$PKI_CLIENT_KEY"; do
	m=$(stat -c %a "$k")
	[ "$m" = 600 ] || { tap_diag "$k has mode $m"; mode_ok=no; }
done
tap_check "all four private keys are 0600" [ "$mode_ok" = yes ]

issuer_cn()
{
	openssl x509 -noout -issuer -nameopt multiline -in "$1" |
	    sed -n 's/^ *commonName *= *//p'
}
tap_check "the two CAs have different names" \
    [ "$(issuer_cn "$PKI_SERVER_CERT")" != "$(issuer_cn "$PKI_CLIENT_CERT")" ]

ca_flag()
{
	openssl x509 -noout -ext basicConstraints -in "$1" | grep -q 'CA:FALSE'
}
tap_check "leaves are not CAs" eval \
    'ca_flag "$PKI_SERVER_CERT" && ca_flag "$PKI_CLIENT_CERT"'

tap_done
