#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# The RA's HTTPS front end (server/http.c) through tests/tools/https-echo:
# TLS versions, body limits, chunked bodies, client certificates (and a
# forged one with the right issuer name), problem+json, headers.
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/pki.sh"

command -v curl >/dev/null || tap_skip_all "curl not installed (apt-get install curl)"
tap_plan 18
tap_tmpdir T
pki_setup "$T/pki" >&2 || tap_bail "cannot make the test CAs"
echo=$top_builddir/tests/tools/https-echo
"$echo" "$PKI_SERVER_CERT" "$PKI_SERVER_KEY" "$PKI_CLIENT_CA_CERT" \
    "$T/port" 1024 2>"$T/echo.log" &
pid=$!
tap_at_exit "kill $pid"
i=0; while [ ! -s "$T/port" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
port=$(cat "$T/port")
[ -n "$port" ] || tap_bail "https-echo did not start: $(cat "$T/echo.log")"
url=https://127.0.0.1:$port
c()
{
	curl -sS --max-time 10 --cacert "$PKI_SERVER_CA_CERT" "$@"
}

out=$(c "$url/a/b?q=1")
case $out in
*'"method":"GET"'*'"path":"/a/b"'*'"n_certs":0'*) tap_ok "GET over TLS, path without the query, no client certificate" ;;
*) tap_fail "GET over TLS, path without the query, no client certificate"; tap_diag "$out" ;;
esac
tap_check "TLS 1.2 is served" sh -c "echo | openssl s_client -connect 127.0.0.1:$port -tls1_2 -CAfile '$PKI_SERVER_CA_CERT' -verify_return_error >/dev/null 2>&1"
tap_check "TLS 1.3 is served" sh -c "echo | openssl s_client -connect 127.0.0.1:$port -tls1_3 -CAfile '$PKI_SERVER_CA_CERT' -verify_return_error >/dev/null 2>&1"
tap_check "TLS 1.1 is refused" sh -c "! echo | openssl s_client -connect 127.0.0.1:$port -tls1_1 -cipher DEFAULT@SECLEVEL=0 >/dev/null 2>&1"
tap_check "TLS 1.0 is refused" sh -c "! echo | openssl s_client -connect 127.0.0.1:$port -tls1 -cipher DEFAULT@SECLEVEL=0 >/dev/null 2>&1"

head -c 1024 /dev/zero | tr '\0' x >"$T/1024"
head -c 1025 /dev/zero | tr '\0' x >"$T/1025"
out=$(c -H 'Content-Type: Application/PKCS10; charset=x' --data-binary @"$T/1024" "$url/e")
case $out in
*'"method":"POST"'*'"body_len":1024'*'"pkcs10":true'*) tap_ok "a body at the limit is taken; media types compare without case and parameters" ;;
*) tap_fail "a body at the limit is taken; media types compare without case and parameters"; tap_diag "$out" ;;
esac
out=$(c -w ' %{http_code} %{content_type}' --data-binary @"$T/1025" "$url/e")
case $out in
*'"type":"request-too-large"'*'"status":413'*' 413 application/problem+json') tap_ok "one byte over the limit: 413 problem+json" ;;
*) tap_fail "one byte over the limit: 413 problem+json"; tap_diag "$out" ;;
esac
out=$(c -H 'Transfer-Encoding: chunked' --data-binary @"$T/1024" "$url/e")
case $out in
*'"body_len":1024'*) tap_ok "a chunked body is taken" ;;
*) tap_fail "a chunked body is taken"; tap_diag "$out" ;;
esac
out=$(c -w ' %{http_code}' -H 'Transfer-Encoding: chunked' --data-binary @"$T/1025" "$url/e")
case $out in
*' 413') tap_ok "a chunked body over the limit: 413" ;;
*) tap_fail "a chunked body over the limit: 413"; tap_diag "$out" ;;
esac
# a huge Content-Length is refused before any body is sent
out=$(printf 'POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000000\r\nContent-Type: application/pkcs10\r\n\r\n' |
    timeout 10 openssl s_client -quiet -ign_eof -connect 127.0.0.1:$port -CAfile "$PKI_SERVER_CA_CERT" 2>/dev/null | head -n 1)
case $out in
"HTTP/1.1 413"*) tap_ok "Content-Length of 10 GB: 413 without the body" ;;
*) tap_fail "Content-Length of 10 GB: 413 without the body"; tap_diag "$out" ;;
esac

out=$(c --cert "$PKI_CLIENT_CERT" --key "$PKI_CLIENT_KEY" "$url/c")
case $out in
*'"n_certs":1'*'"cert_verified":true'*) tap_ok "a client certificate from the trusted CA is verified" ;;
*) tap_fail "a client certificate from the trusted CA is verified"; tap_diag "$out" ;;
esac

# A forged CA with the same name as the client CA, and a leaf from it:
# GnuTLS returns 0 with a non-zero status for this one (R10).
subj=$(openssl x509 -in "$PKI_CLIENT_CA_CERT" -noout -subject -nameopt compat | sed 's/^subject=//')
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$T/forged-ca.key" -out "$T/forged-ca.crt" -subj "$subj" -days 2 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$T/forged.key" -out "$T/forged.csr" -subj "/CN=forged" 2>/dev/null
openssl x509 -req -in "$T/forged.csr" -CA "$T/forged-ca.crt" -CAkey "$T/forged-ca.key" \
    -set_serial 5 -days 2 -out "$T/forged.crt" 2>/dev/null
tap_check "the forged issuer has the client CA's name" \
    [ "$(openssl x509 -in "$T/forged.crt" -noout -issuer)" = "$(openssl x509 -in "$PKI_CLIENT_CA_CERT" -noout -subject | sed 's/^subject/issuer/')" ]
out=$(c --cert "$T/forged.crt" --key "$T/forged.key" "$url/c")
case $out in
*'"n_certs":1'*'"cert_verified":false'*) tap_ok "a forged certificate with the right issuer name is not verified" ;;
*) tap_fail "a forged certificate with the right issuer name is not verified"; tap_diag "$out" ;;
esac

out=$(c -D "$T/headers" "$url/problem")
case $out in
'{"type":"example-problem","title":"An example","status":409,"detail":"with a detail"}') tap_ok "problem+json body" ;;
*) tap_fail "problem+json body"; tap_diag "$out" ;;
esac
tap_check "status 409 and its content type" grep -qi '^content-type: application/problem+json' "$T/headers"
tap_check "Retry-After is sent" grep -qi '^retry-after: 7' "$T/headers"
tap_check "responses are not cached" grep -qi '^cache-control: no-store' "$T/headers"

kill "$pid"
i=0; while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
tap_check "SIGTERM stops the server" [ ! -e "/proc/$pid" ]
tap_done
