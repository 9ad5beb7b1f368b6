#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# tests/lib/tpm2token.sh: a tpm2-pkcs11 token on swtpm in a private
# directory, visible directly and through p11-kit-proxy, with working
# login, EC P-256 key generation and signing, non-extractable keys, and
# nothing left running when the test exits.

. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/tpm2token.sh"

reason=$(tpm2token_check) || tap_skip_all "$reason"
command -v openssl >/dev/null 2>&1 ||
    tap_skip_all "openssl not installed (Debian package openssl)"
command -v p11-kit >/dev/null 2>&1 ||
    tap_skip_all "p11-kit not installed (Debian package p11-kit)"
proxy=$(pkg-config --variable=proxy_module p11-kit-1 2>/dev/null)
[ -r "$proxy" ] || proxy=$(ls /usr/lib/*/p11-kit-proxy.so 2>/dev/null | head -n 1)
[ -r "$proxy" ] || tap_skip_all "p11-kit-proxy.so not found"

# has PATTERN: does $out have a line matching the extended regex?
has()
{
	printf '%s\n' "$out" | grep -Eq "$1"
}

# All of the given processes are gone.
all_gone()
{
	for p in "$@"; do
		kill -0 "$p" 2>/dev/null && return 1
	done
	return 0
}

# ec_spki ID FILE: the P-256 public key with CKA_ID ID as DER
# SubjectPublicKeyInfo, built from its CKA_EC_POINT.  (pkcs11-tool
# 0.23's --read-object fails on about 1 EC key in 70 with "cannot create
# EVP_PKEY" under OpenSSL 3.0, OpenSC issue #3200.)
ec_spki()
{
	pt=$(pkcs11-tool --module "$M" $tok --list-objects --type pubkey \
	    --id "$1" 2>/dev/null | sed -n 's/^ *EC_POINT: *//p')
	# An uncompressed P-256 point, DER-wrapped (04 41 04 X Y).
	case $pt in
	04410[4]*) pt=${pt#0441} ;;
	*) echo "unexpected EC_POINT '$pt'" >&2; return 1 ;;
	esac
	[ "${#pt}" -eq 130 ] || { echo "bad EC point '$pt'" >&2; return 1; }
	printf '%s\n' "asn1 = SEQUENCE:spki" "[spki]" "alg = SEQUENCE:alg" \
	    "key = FORMAT:HEX,BITSTRING:$pt" "[alg]" "oid = OID:id-ecPublicKey" \
	    "curve = OID:prime256v1" >"$2.cnf" &&
	openssl asn1parse -genconf "$2.cnf" -out "$2" -noout >&2
}

now_ms()
{
	t=$(date +%s%N)
	echo "${t%??????}"
}

tap_plan 21

t0=$(now_ms)
tap_check "tpm2token_setup makes a token" tpm2token_setup p11e-tpm2fix
t1=$(now_ms)
tap_diag "setup (swtpm, dbus-daemon, tpm2-abrmd, ptool init + addtoken):" \
    "$((t1 - t0)) ms"
[ -n "$TPM2TOKEN_DIR" ] || tap_bail "no token, nothing else can run"
tap_diag "module $TPM2TOKEN_MODULE, slot $TPM2TOKEN_SLOT," \
    "serial $TPM2TOKEN_SERIAL"
tap_check "the store is private" eval '[ "$TPM2_PKCS11_STORE" = \
    "$TPM2TOKEN_DIR/store" ] && [ -s "$TPM2_PKCS11_STORE/tpm2_pkcs11.sqlite3" ]'

M=$TPM2TOKEN_MODULE
D=$TPM2TOKEN_DIR
tok="--token-label $TPM2TOKEN_LABEL"
login="$tok --login --pin $TPM2TOKEN_PIN"

# Seen directly, through p11-kit-proxy and by p11-kit itself.
for m in "$M" "$proxy"; do
	out=$(pkcs11-tool --module "$m" -L 2>&1)
	printf '%s\n' "$out" >&2
	tap_check "$(basename "$m") lists the token" eval \
	    'has "token label *: $TPM2TOKEN_LABEL\$" &&
	     has "serial num *: $TPM2TOKEN_SERIAL\$"'
done
out=$(p11-kit list-modules 2>&1 | awk '/^[^ ]/ { m = $1 } m == "tpm2_pkcs11:"')
tap_check "p11-kit list-modules shows it under tpm2_pkcs11" \
    has "^ +token: $TPM2TOKEN_LABEL\$"

# PINs.  The TPM's dictionary-attack lockout is off in the fixture, so
# wrong PINs do not lock the right one out.
tap_check "user PIN logs in" pkcs11-tool --module "$M" $login -O
out=$(pkcs11-tool --module "$M" $tok --login --pin 9999 -O 2>&1)
printf '%s\n' "$out" >&2
tap_check "wrong PIN is refused with CKR_PIN_INCORRECT" \
    has "C_Login failed: rv = CKR_PIN_INCORRECT"
for i in 1 2 3; do
	pkcs11-tool --module "$M" $tok --login --pin 9999 -O >/dev/null 2>&1
done
tap_check "after 4 wrong PINs the right one still works" \
    pkcs11-tool --module "$M" $login -O

# EC P-256: generate, sign, verify with OpenSSL.
id=0102030405060708090a0b0c0d0e0f1011121314
t0=$(now_ms)
tap_check "EC P-256 key pair generated" pkcs11-tool --module "$M" $login \
    --keypairgen --key-type EC:prime256v1 --id "$id" --label p256
t1=$(now_ms)
tap_diag "pkcs11-tool EC P-256 keygen: $((t1 - t0)) ms"
head -c 1000 /dev/urandom >"$D/data"
openssl dgst -sha256 -binary "$D/data" >"$D/h.bin"
t0=$(now_ms)
tap_check "ECDSA signature made" pkcs11-tool --module "$M" $login --sign \
    -m ECDSA --id "$id" -i "$D/h.bin" -o "$D/ec.sig" --signature-format openssl
t1=$(now_ms)
tap_diag "pkcs11-tool login + ECDSA sign: $((t1 - t0)) ms"
ec_spki "$id" "$D/ec.pub"
tap_check "... and OpenSSL verifies it against the key's CKA_EC_POINT" \
    openssl pkeyutl -verify -pubin -keyform DER -inkey "$D/ec.pub" \
    -in "$D/h.bin" -sigfile "$D/ec.sig"
out=$(pkcs11-tool --module "$M" $login --list-objects --type privkey \
    --id "$id" 2>&1)
printf '%s\n' "$out" >&2
tap_check "the private key is sensitive and never extractable" \
    has "Access: +sensitive, always sensitive, never extractable, local\$"
tap_check "signing through p11-kit-proxy works too" eval \
    'pkcs11-tool --module "$proxy" $login --sign -m ECDSA --id "$id" \
	-i "$D/h.bin" -o "$D/ec2.sig" --signature-format openssl >&2 &&
     openssl pkeyutl -verify -pubin -keyform DER -inkey "$D/ec.pub" \
	-in "$D/h.bin" -sigfile "$D/ec2.sig" >&2'
tap_check "EC P-384 key pair generated" pkcs11-tool --module "$M" $login \
    --keypairgen --key-type EC:secp384r1 --id 0384 --label p384

# Mechanisms, for the record: RSA and EC.
mechs=$(pkcs11-tool --module "$M" $tok -M 2>&1)
tap_diag "RSA and EC mechanisms:"
tap_diag "$(printf '%s\n' "$mechs" | grep -E 'RSA|ECDSA')"
for mech in RSA-X-509 RSA-PKCS-PSS ECDSA; do
	tap_check "mechanism $mech listed" eval \
	    'printf "%s\n" "$mechs" | grep -q "^ *$mech,"'
done

# RSA-2048: PSS and raw RSA (what TLS signing uses) verify in OpenSSL.
t0=$(now_ms)
pkcs11-tool --module "$M" $login --keypairgen --key-type rsa:2048 \
    --id 2048 --label rsa2048 >&2
t1=$(now_ms)
tap_diag "pkcs11-tool RSA-2048 keygen: $((t1 - t0)) ms"
pkcs11-tool --module "$M" $tok --read-object --type pubkey --id 2048 \
    -o "$D/rsa.pub" >&2
tap_check "RSA-PKCS-PSS (SHA-256) signature verifies" eval \
    'pkcs11-tool --module "$M" $login --sign -m RSA-PKCS-PSS \
	--hash-algorithm SHA256 --mgf MGF1-SHA256 --salt-len -1 --id 2048 \
	-i "$D/h.bin" -o "$D/pss.sig" >&2 &&
     openssl pkeyutl -verify -pubin -keyform DER -inkey "$D/rsa.pub" \
	-in "$D/h.bin" -sigfile "$D/pss.sig" -pkeyopt rsa_padding_mode:pss \
	-pkeyopt rsa_pss_saltlen:32 -pkeyopt digest:sha256 >&2'
# A PKCS#1 v1.5 type 1 block the caller padded: 00 01 FF.. 00 data.
{
	printf '\000\001'
	head -c 200 /dev/zero | tr '\000' '\377'
	printf '\000'
	head -c 53 /dev/urandom
} >"$D/block"
tap_check "RSA-X-509 on a caller-padded block round-trips" eval \
    'pkcs11-tool --module "$M" $login --sign -m RSA-X-509 --id 2048 \
	-i "$D/block" -o "$D/raw.sig" >&2 &&
     openssl pkeyutl -verifyrecover -pubin -keyform DER -inkey "$D/rsa.pub" \
	-in "$D/raw.sig" -pkeyopt rsa_padding_mode:none -out "$D/raw.out" >&2 &&
     cmp "$D/block" "$D/raw.out" >&2'

# The mitigation for everybody else: TPM2_PKCS11_BACKEND=none makes the
# system-wide registered module fail C_Initialize at once and silently,
# before it probes for a TPM or writes $HOME/.tpm2_pkcs11.
home=$D/home
mkdir "$home"
err=$(env -u TPM2_PKCS11_STORE -u TPM2_PKCS11_TCTI -u TPM2TOOLS_TCTI \
    -u DBUS_SESSION_BUS_ADDRESS HOME="$home" TPM2_PKCS11_BACKEND=none \
    p11-kit list-modules 2>&1 >/dev/null)
printf '%s\n' "$err" >&2
tap_check "TPM2_PKCS11_BACKEND=none silences the module and leaves HOME alone" \
    eval '[ -z "$err" ] && [ ! -e "$home/.tpm2_pkcs11" ]'

# The cleanup runs at exit: check it from a child shell.  The daemons'
# output goes to files, so the command substitution does not wait on them.
child=$(sh -c '. "$top_srcdir/tests/lib/tap.sh"
	. "$top_srcdir/tests/lib/tpm2token.sh"
	tpm2token_setup >&2 && echo "$TPM2TOKEN_DIR $tpm2token_pids"')
tap_diag "child fixture: $child"
tap_check "the daemons are stopped and the directory removed at exit" eval \
    '[ -n "$child" ] && [ ! -e "${child%% *}" ] && all_gone ${child#* }'

tap_done
