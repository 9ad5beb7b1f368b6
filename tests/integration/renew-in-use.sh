#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Renewal while a TLS client uses the certificate (issue 7): nginx on
# 127.0.0.1 requires a client certificate from the RA's issuing CA; an
# openssl s_client with the key on the token (libp11's engine) keeps one
# HTTP/1.1 connection open while the agent renews the credential by itself
# (a new key and certificate, [policy] validity 90 s, renew-before 30 s,
# backdate 50 s: due 10 s after issuance; grace-period 20 s).  The open
# connection goes on serving with the old certificate; during the grace
# period a new connection still logs in with the old pair; the new pair
# logs in; after the grace period the old pair is gone from the token.

. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/softhsm.sh"
. "$top_srcdir/tests/lib/agent.sh"
. "$top_srcdir/tests/lib/ra.sh"
. "$top_srcdir/tests/lib/enroll.sh"
. "$top_srcdir/tests/lib/cred.sh"
. "$top_srcdir/tests/lib/pki.sh"
. "$top_srcdir/tests/lib/browser.sh"

cred_require
NGINX=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || tap_skip_all "nginx not installed (Debian package nginx-light)"
for c in openssl mkfifo timeout; do
	command -v $c >/dev/null 2>&1 || tap_skip_all "$c not installed"
done
openssl engine pkcs11 >/dev/null 2>&1 ||
    tap_skip_all "openssl has no pkcs11 engine (Debian package libengine-pkcs11-openssl)"

tap_plan 8

cred_setup p11e-inuse 'Pin-InUse-3e81f0' \
    "[policy]" "validity = 90" "renew-before = 30" "backdate = 50"
cat >"$P11ENROLL_CONF" <<EOF
[service ra]
url = $URL
server-pin = $SPIN
token = $TOK?pin-source=file:$T/pin
grace-period = 20
EOF

C1=$(cred_enroll S0001 ra "$TOK")
[ -n "$C1" ] || tap_bail "enrollment failed"
SER1=$(cred_field "$C1" serial)
ID1=$(cred_field "$C1" id)
# from now on the RA issues 1-hour certificates: the renewed one stays
cred_ra_restart "[policy]" "validity = 3600" "renew-before = 30" \
    "backdate = 50" || tap_bail "serve did not restart"

browser_nginx_start "$T/nginx" "$D/tls.crt" "$D/tls.key" "$D/ca.crt" ||
    tap_bail "nginx did not start: $(cat "$T/nginx/stderr" "$T/nginx/error.log" 2>/dev/null)"

# client ID CERT: a connection with the token's key ID and CERT; the
# requests on stdin, the answers on stdout
client()
{
	browser_tls_client p11e-inuse "$1" "$2" "$PIN" "$D/server-ca.crt" \
	    2>>"$T/s_client.err"
}
GET='GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'
# login ID CERT: one new connection, one request; the HTTP status
login()
{
	printf 'GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' | client "$1" "$2" \
	    >"$T/page.txt"
	sed -n '1s/^HTTP\/1\.[01] \([0-9][0-9][0-9]\).*/\1/p' "$T/page.txt"
}
# wait_for FILE PATTERN COUNT: until FILE has COUNT lines matching (30 s)
wait_for()
{
	e=$(($(date +%s) + 30))
	while [ "$(grep -c "$2" "$1" 2>/dev/null)" -lt "$3" ] &&
	    [ "$(date +%s)" -lt "$e" ]; do
		sleep 0.2
	done
	[ "$(grep -c "$2" "$1" 2>/dev/null)" -ge "$3" ]
}

browser_ra_cert_pem "$D/ra.db" "$SER1" >"$T/old.pem"
# the long connection: requests through a FIFO, answers into conn.out
mkfifo "$T/in"
client "$ID1" "$T/old.pem" <"$T/in" >"$T/conn.out" &
conn=$!
tap_at_exit "kill $conn 2>/dev/null"
exec 5>"$T/in"
printf "$GET" >&5
tap_check "one connection logs in with the first certificate" sh -c \
    "grep -q 'HTTP/1.1 200' '$T/conn.out' || sleep 5; grep -q 'HTTP/1.1 200' '$T/conn.out'"

# the agent renews by itself (due 10 s after issuance)
e=$(($(date +%s) + 60))
while [ "$(cred_field "$C1" serial)" = "$SER1" ] && [ "$(date +%s)" -lt "$e" ]; do
	sleep 0.5
done
SER2=$(cred_field "$C1" serial)
ID2=$(cred_field "$C1" id)
tap_check "the agent renewed meanwhile: a new key and certificate" \
    test -n "$SER2" -a "$SER2" != "$SER1" -a "$ID2" != "$ID1"

printf "$GET" >&5
wait_for "$T/conn.out" 'HTTP/1.1 200' 2
tap_check "the open connection goes on serving (a second answer, 200)" \
    test "$(grep -c 'HTTP/1.1 200' "$T/conn.out")" = 2
tap_check "... on the first certificate" \
    test "$(grep -ci "serial.*$SER1" "$T/conn.out")" -ge 2
exec 5>&-
kill $conn 2>/dev/null

tap_check "a new connection with the old pair in the grace period: 200" \
    test "$(login "$ID1" "$T/old.pem")" = 200
browser_ra_cert_pem "$D/ra.db" "$SER2" >"$T/new.pem"
code=$(login "$ID2" "$T/new.pem")
tap_check "the new pair logs in (200, the new serial)" sh -c \
    "test '$code' = 200 && grep -qi '$SER2' '$T/page.txt'"

# after the grace period (20 s from the renewal) the old pair goes
e=$(($(date +%s) + 60))
until [ "$(cred_field "$C1" old_id)" = "" ] || [ "$(date +%s)" -ge "$e" ]; do
	sleep 0.5
done
tap_check "after the grace period the old key and certificate left the token" \
    test "$(en_count "$TOK" certificate)/$(en_count "$TOK" private-key)" = 1/1
cat "$T/nginx/access.log" >&2
# (its start-up probe is curl's, with no client certificate: 400)
tap_check "nginx saw both certificates, and refused no client of ours" sh -c \
    "grep -qi '^200 verify=SUCCESS serial=$SER1 ' '$T/nginx/access.log' &&
     grep -qi '^200 verify=SUCCESS serial=$SER2 ' '$T/nginx/access.log' &&
     ! grep -v 'ua=\"curl/' '$T/nginx/access.log' | grep -q '^[45]'"
tap_done
