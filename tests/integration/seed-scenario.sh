#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# The bank manual's whole scenario, as `./quickstart demo` runs it
# (tests/lib/seed-scenario.sh, the one script both run): the
# administrator's certificate onto its token with the one-time code, the
# user's first certificate onto the user's token, its expiry (a 12 s
# lifetime set by the RA's policy, no clock moved), the administrator's
# login with the grid challenge answered from the customer card and a
# reissue with the confirmation PIN, the user's enrollment within the
# window, then nginx accepting the new certificate and refusing the
# expired one; every step's result is checked here, and that nothing the
# scenario started is left running.

. "$top_srcdir/tests/lib/tap.sh"

for c in softhsm2-util script oathtool python3 curl openssl sqlite3 setsid; do
	command -v $c >/dev/null 2>&1 ||
	    tap_skip_all "$c not installed (Debian packages softhsm2, util-linux, oathtool, python3, curl, openssl, sqlite3)"
done
NGINX=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || tap_skip_all "nginx not installed (Debian package nginx-light)"
engine=$(openssl version -e 2>/dev/null | sed -n 's/^ENGINESDIR: "\(.*\)"/\1/p')/pkcs11.so
[ -r "$engine" ] ||
    tap_skip_all "libp11's engine not installed (Debian package libengine-pkcs11-openssl)"

tap_plan 19
tap_tmpdir W
t0=$(date +%s)
sh "$top_srcdir/tests/lib/seed-scenario.sh" "$top_builddir" "$W" \
    >"$W/out" 2>&1
rc=$?
t1=$(date +%s)
cat "$W/out" >&2
tap_diag "the scenario took $((t1 - t0)) s"
tap_check "the scenario runs to its end (exit 0)" [ $rc = 0 ]
tap_check "... printing its nine numbered steps in order, under the seed's headings" sh -c \
    "[ \"\$(sed -n 's/^\[\([0-9]*\)\] .*/\1/p' '$W/out' | tr '\n' ' ')\" = '1 2 3 4 5 6 7 8 9 ' ] && grep -q '^== 管理者の操作' '$W/out' && grep -q '^== 利用者の操作' '$W/out'"

res()
{
	sed -n "s/^$1 //p" "$W/results" | head -n 1
}
sq()
{
	sqlite3 "$W/ra/ra.db" "$1"
}
# on_token JSON SERIAL: a leaf certificate SERIAL among the token's objects
on_token()
{
	python3 -c '
import json, sys
o = json.load(open(sys.argv[1]))["objects"]
c = [x for x in o if x["kind"] == "certificate" and not x.get("authority") and x["serial"].upper() == sys.argv[2].upper()]
k = [x for x in o if x["kind"] == "private-key" and c and x["id"] == c[0]["id"]]
assert c and k, (sys.argv[2], o)' "$1" "$2"
}

C=$(sq "SELECT contract_id FROM contracts")
aserial=$(res admin-serial)
tap_check "the administrator's certificate and key are on the administrator's token" \
    on_token "$W/admin-token.json" "$aserial"
tap_check "... issued for the admin role to A0001" \
    [ "$(sq "SELECT c.role, c.status, u.user_id FROM certificates c JOIN users u ON u.id = c.user WHERE upper(c.serial) = upper('$aserial')")" = "admin|valid|A0001" ]

s1=$(res serial-1)
tap_check "the user's first certificate and key are on the user's token" \
    on_token "$W/user-token-1.json" "$s1"
tap_check "... issue 1 of S0001, with the policy's 12 s lifetime" \
    [ "$(sq "SELECT c.issue_no, c.not_after - c.not_before FROM certificates c JOIN users u ON u.id = c.user WHERE upper(c.serial) = upper('$s1') AND u.user_id = 'S0001'")" = "1|12" ]
tap_check "its expiry: p11enroll list shows it EXPIRED, asking for a reissue" \
    python3 -c "
import json
c = [x for x in json.load(open('$W/list-expired.json'))['credentials'] if x['serial'].upper() == '$s1'.upper()]
assert len(c) == 1 and c[0]['state'] == 'EXPIRED' and c[0]['last_error']['name'] == 'CertExpired' and 'reissue' in c[0]['last_error']['message'], c"

tap_check "the administrator logged in with the card's numbers" sh -c \
    "[ '$(res login)' = ok ] && sqlite3 '$W/ra/ra.db' \"SELECT action, result FROM audit WHERE actor = 'admin:$C/A0001'\" | grep -q '^admin-login|ok$'"
tap_check "the reissue opened an acquisition window (reason expired, by the administrator)" \
    [ "$(res window)" = "expired open admin:$C/A0001" ]
tap_check "... audited with the confirmation PIN accepted" sh -c \
    "sqlite3 '$W/ra/ra.db' \"SELECT actor, action, target, result, detail FROM audit WHERE action = 'admin-certificate'\" | grep -q '^admin:$C/A0001|admin-certificate|$C/S0001|ok|reissue reason=expired'"

s2=$(res serial-2)
tap_check "the user's new certificate and key are on the user's token" \
    on_token "$W/user-token-2.json" "$s2"
tap_check "... issue 2 of S0001, valid, from the window" sh -c \
    "[ \"\$(sqlite3 '$W/ra/ra.db' \"SELECT c.issue_no, c.status FROM certificates c JOIN users u ON u.id = c.user WHERE upper(c.serial) = upper('$s2') AND u.user_id = 'S0001'\")\" = '2|valid' ] && [ \"\$(sqlite3 '$W/ra/ra.db' \"SELECT count(*) FROM windows w JOIN users u ON u.id = w.user WHERE u.user_id = 'S0001' AND w.state = 'open'\")\" = 0 ]"
tap_check "the expired certificate's key and certificate left the token with its record" sh -c \
    "[ '$(res old-objects-after)' = 0 ] && ! grep -qi '$s1' '$W/user-token-2.json' &&
     grep -qi '$s1' '$W/user-token-1.json'"

tap_check "the agent tracks only the new credential; status exits 0 (the expired one retired)" \
    [ "$(res credentials-after) $(res status-after)" = "1 0" ]
tap_check "nginx accepts the new certificate from the token (HTTP 200, verify SUCCESS)" sh -c \
    "[ '$(res nginx-new)' = 200 ] && grep -qi '^200 verify=SUCCESS serial=$s2 ' '$W/nginx/access.log'"
tap_check "nginx refuses the old one as expired (HTTP 400)" sh -c \
    "[ '$(res nginx-old)' = 400 ] && grep -qi '^400 verify=FAILED:certificate has expired serial=$s1 ' '$W/nginx/access.log'"

tap_check "the scenario stopped the RA, nginx and both agents it started" sh -c \
    "for k in stopped-ra stopped-nginx stopped-agent-admin stopped-agent-user; do p=\$(sed -n \"s/^\$k //p\" '$W/results'); [ -n \"\$p\" ] || exit 1; ! kill -0 \$p 2>/dev/null || exit 1; done"
nothing_from()
{
	! ps -eo args | grep -v '^grep' | grep -F "$1"
}
tap_check "... and nothing runs from its directory any more" nothing_from "$W"
tap_check "the demonstration's secrets are in none of the files it left (logs, journals, database)" sh -c \
    "! grep -rlF -e Demo-Passw0rd-S0001 -e Demo-Passw0rd-A0001 -e User-Token-1357 -e Admin-Token-2468 -e So-Pin-Demo-8642 '$W'"
tap_done
