# SPDX-License-Identifier: BSD-3-Clause
# Two test CAs made at test time with the openssl CLI (sourced after
# tests/lib/tap.sh), as real deployments have them: one CA for the
# servers' TLS certificates and a separate issuing CA for client
# certificates.  All keys are EC P-256, written 0600.
#
#   pki_setup [DIR]   creates everything in DIR (default: a private
#                     temp dir removed at exit) and exports:
#     PKI_DIR
#     PKI_SERVER_CA_CERT  PKI_SERVER_CA_KEY    server TLS CA
#     PKI_SERVER_CERT     PKI_SERVER_KEY       CN=localhost, SAN
#                         IP:127.0.0.1, IP:::1, DNS:localhost, serverAuth
#     PKI_CLIENT_CA_CERT  PKI_CLIENT_CA_KEY    client issuing CA
#     PKI_CLIENT_CERT     PKI_CLIENT_KEY       CN=p11e-test-client,
#                         clientAuth
#   Returns non-zero with the openssl output on stderr on failure.

pki_run()
{
	openssl "$@" >>"$PKI_DIR/openssl.log" 2>&1 || {
		cat "$PKI_DIR/openssl.log" >&2
		return 1
	}
}

# pki_ca NAME SUBJECT: a self-signed CA.
pki_ca()
{
	pki_run req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
	    -nodes -keyout "$PKI_DIR/$1.key" -out "$PKI_DIR/$1.crt" \
	    -subj "$2" -days 30 -sha256 \
	    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
	    -addext "keyUsage=critical,keyCertSign,cRLSign" \
	    -addext "subjectKeyIdentifier=hash"
}

# pki_leaf NAME CA SUBJECT EXTENSIONS: a leaf signed by CA.
pki_leaf()
{
	printf '%s\n' "[ext]" "basicConstraints=critical,CA:FALSE" \
	    "subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid" \
	    "$4" >"$PKI_DIR/$1.ext" &&
	pki_run req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
	    -nodes -keyout "$PKI_DIR/$1.key" -out "$PKI_DIR/$1.csr" \
	    -subj "$3" &&
	pki_run x509 -req -in "$PKI_DIR/$1.csr" -CA "$PKI_DIR/$2.crt" \
	    -CAkey "$PKI_DIR/$2.key" -CAserial "$PKI_DIR/$2.srl" \
	    -CAcreateserial -days 30 -sha256 \
	    -extfile "$PKI_DIR/$1.ext" -extensions ext -out "$PKI_DIR/$1.crt"
}

pki_setup()
{
	command -v openssl >/dev/null 2>&1 || {
		echo "openssl not found (Debian package openssl)" >&2
		return 1
	}
	if [ -n "${1-}" ]; then
		PKI_DIR=$1
		mkdir -p "$PKI_DIR" || return 1
	else
		PKI_DIR=$(mktemp -d "${TMPDIR:-/tmp}/p11e-pki.XXXXXX") ||
		    return 1
		if command -v tap_at_exit >/dev/null 2>&1; then
			tap_at_exit "rm -rf '$PKI_DIR'"
		fi
	fi
	: >"$PKI_DIR/openssl.log"
	# Keys are created 0600 whatever openssl does with the mode.
	pki_umask=$(umask)
	umask 077
	pki_ca server-ca "/O=p11enroll test/CN=p11enroll test server CA" &&
	pki_leaf server server-ca "/O=p11enroll test/CN=localhost" \
	    "extendedKeyUsage=serverAuth
keyUsage=critical,digitalSignature
subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost" &&
	pki_ca client-ca "/O=p11enroll test/CN=p11enroll test client CA" &&
	pki_leaf client client-ca "/O=p11enroll test/CN=p11e-test-client" \
	    "extendedKeyUsage=clientAuth
keyUsage=critical,digitalSignature"
	pki_rc=$?
	umask "$pki_umask"
	[ "$pki_rc" -eq 0 ] || return "$pki_rc"
	chmod 0600 "$PKI_DIR"/*.key || return 1
	chmod 0644 "$PKI_DIR"/*.crt || return 1
	PKI_SERVER_CA_CERT=$PKI_DIR/server-ca.crt
	PKI_SERVER_CA_KEY=$PKI_DIR/server-ca.key
	PKI_SERVER_CERT=$PKI_DIR/server.crt
	PKI_SERVER_KEY=$PKI_DIR/server.key
	PKI_CLIENT_CA_CERT=$PKI_DIR/client-ca.crt
	PKI_CLIENT_CA_KEY=$PKI_DIR/client-ca.key
	PKI_CLIENT_CERT=$PKI_DIR/client.crt
	PKI_CLIENT_KEY=$PKI_DIR/client.key
	export PKI_DIR PKI_SERVER_CA_CERT PKI_SERVER_CA_KEY PKI_SERVER_CERT \
	    PKI_SERVER_KEY PKI_CLIENT_CA_CERT PKI_CLIENT_CA_KEY \
	    PKI_CLIENT_CERT PKI_CLIENT_KEY
}
