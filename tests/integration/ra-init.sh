#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# p11enroll-ra init: what it creates, with which modes, and that a
# non-empty directory is refused without a change.

. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/ra.sh"

command -v sqlite3 >/dev/null 2>&1 ||
    tap_skip_all "sqlite3 not installed (Debian package sqlite3)"

tap_plan 21
tap_tmpdir T

mode() { stat -c %a "$1"; }

tap_check "init creates the RA directory" \
    "$RA" init "$T/ra" --hostname ra.example.jp --hostname 192.0.2.7
tap_check "directory is 0700" test "$(mode "$T/ra")" = 700
tap_check "CA key is 0600" test "$(mode "$T/ra/ca.key")" = 600
tap_check "TLS key is 0600" test "$(mode "$T/ra/tls.key")" = 600
tap_check "data key is 0400 and 32 bytes" \
    test "$(mode "$T/ra/data.key")" = 400 -a "$(stat -c %s "$T/ra/data.key")" = 32
tap_check "database is 0600" test "$(mode "$T/ra/ra.db")" = 600
tap_check "CA is a CA" sh -c \
    "openssl x509 -in '$T/ra/ca.crt' -noout -ext basicConstraints | grep -q 'CA:TRUE'"
tap_check "TLS certificate chains to the server CA" \
    openssl verify -CAfile "$T/ra/server-ca.crt" "$T/ra/tls.crt"
tap_check "TLS SAN has loopback, localhost and the hostnames" sh -c \
    "openssl x509 -in '$T/ra/tls.crt' -noout -ext subjectAltName | tr -d ' \n' | grep -q 'DNS:localhost,IPAddress:127.0.0.1,IPAddress:0:0:0:0:0:0:0:1,DNS:ra.example.jp,IPAddress:192.0.2.7' || openssl x509 -in '$T/ra/tls.crt' -noout -ext subjectAltName | grep -q ra.example.jp"
schema=$(sed -n 's/^#define P11E_DB_SCHEMA_VERSION \([0-9]*\)$/\1/p' "$top_srcdir/server/db.h")
tap_check "database is WAL with schema $schema (this code's)" sh -c \
    "test -n '$schema' && test \"\$(sqlite3 '$T/ra/ra.db' 'PRAGMA journal_mode')\" = wal && test \"\$(sqlite3 '$T/ra/ra.db' \"SELECT value FROM meta WHERE key='schema_version'\")\" = '$schema'"
tap_check "ra.conf names the files and comments the policy" sh -c \
    "grep -q '^cert = $T/ra/ca.crt' '$T/ra/ra.conf' && grep -q '^#validity = 366d' '$T/ra/ra.conf' && grep -q '^url = https://ra.example.jp:8443' '$T/ra/ra.conf'"
tap_check "init is audited" sh -c \
    "sqlite3 '$T/ra/ra.db' \"SELECT action FROM audit\" | grep -qx init"

# refusal of a non-empty directory, nothing changed
mkdir "$T/busy" && echo keep >"$T/busy/file"
before=$(ls -la --time-style=+%s "$T/busy" | sort)
if "$RA" init "$T/busy" 2>"$T/err"; then
	tap_fail "init into a non-empty directory is refused"
else
	tap_check "init into a non-empty directory is refused" \
	    grep -q "is not empty" "$T/err"
fi
tap_check "and nothing changed there" \
    test "$(ls -la --time-style=+%s "$T/busy" | sort)" = "$before"
# an existing empty directory is fine
mkdir "$T/empty"
tap_check "init into an empty directory" "$RA" init "$T/empty" --rsa
tap_check "--rsa gives an RSA 3072 CA" sh -c \
    "openssl x509 -in '$T/empty/ca.crt' -noout -text | grep -q 'Public-Key: (3072 bit)'"

# an intermediate issuing CA under a root made here
"$RA" init "$T/im" --intermediate >"$T/im.out" 2>&1
tap_check "init --intermediate: ca.crt is the issuing CA, then the root" \
    sh -c "test \"\$(grep -c 'BEGIN CERTIFICATE' '$T/im/ca.crt')\" = 2 &&
    openssl verify -CAfile '$T/im/root-ca.crt' '$T/im/ca.crt' >/dev/null &&
    grep -q 'take it offline' '$T/im.out'"
tap_check "the root may have one CA below it, the issuing CA none" sh -c \
    "openssl x509 -in '$T/im/root-ca.crt' -noout -ext basicConstraints | grep -q 'pathlen:1' &&
    openssl x509 -in '$T/im/ca.crt' -noout -ext basicConstraints | grep -q 'pathlen:0'"
tap_check "root-ca.key is 0600" test "$(mode "$T/im/root-ca.key")" = 600
# the chain in the wrong order is refused when the CA is loaded
cp "$T/im/ca.crt" "$T/im/ca.crt.orig"
{
	openssl x509 -in "$T/im/ca.crt.orig"
	openssl x509 -in "$T/im/ca.crt.orig"
} >"$T/im/ca.crt"
before=$(sqlite3 "$T/im/ra.db" "SELECT count(*) FROM audit")
P11ENROLL_RA_DIR=$T/im "$RA" crl >"$T/crl.der" 2>"$T/crl.err"
rc=$?
cat "$T/crl.err" >&2
tap_check "a CA file whose chain is out of order is refused, saying how" \
    sh -c "test $rc != 0 && grep -q 'did not issue the one before it; the file holds the issuing CA first' '$T/crl.err'"
tap_check "and no CRL was made" sh -c \
    "test ! -s '$T/crl.der' && test \"\$(sqlite3 '$T/im/ra.db' 'SELECT count(*) FROM audit')\" = '$before'"
tap_done
