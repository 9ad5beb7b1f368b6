# SPDX-License-Identifier: BSD-3-Clause
# Helpers for the end-to-end enrollment tests (sourced after tap.sh,
# agent.sh and ra.sh, with $T a private temp dir).  The same steps as
# tests/integration/enroll-softhsm.sh, shared by the tests that followed it.
#
#   en_ra_start [CONTRACT [CONF...]]
#                   RA in $T/ra ($D), `serve` on a free port of 127.0.0.1
#                   ($PORT, $URL, $RA_PID, log $T/ra.log); a contract
#                   named CONTRACT (default しんきん商事) in $C; each CONF
#                   is one "key = value" line of [server] (default: no
#                   practical rate limit); EN_RA_INIT_ARGS are more
#                   options of p11enroll-ra init (--intermediate)
#   en_user ID      user ID (password $PW), invitation $T/ID.inv, TOTP
#                   secret $T/ID.otp
#   en_otp ID [SEC] the code of now (or now + SEC: the RA accepts +1 step)
#   en_count URI KIND   private-key, public-key, certificate (leaves), ca
#                   objects on the token (PIN $PIN); CMD_PREFIX runs the
#                   CLI through a wrapper (p11kit_as_user)
#   en_enroll USER URI [ENV...]
#                   p11enroll enroll with PIN, password and OTP on stdin;
#                   E_OTP_LATER=1 takes the next step's code
#   en_ra_serial USER   the serials the RA issued to USER, one a line
#   en_free_port    a free TCP port of 127.0.0.1

PW=${PW:-'Canary-Passw0rd-enroll-8c2d'}

en_free_port()
{
	python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

en_ra_start()
{
	D=$T/ra
	en_contract=${1:-しんきん商事}
	export P11ENROLL_RA_DIR=$D
	"$RA" init "$D" ${EN_RA_INIT_ARGS-} >/dev/null 2>&1 || return 1
	PORT=$(en_free_port) || return 1
	URL=https://127.0.0.1:$PORT
	# invitations name the URL the server really listens on
	sed -i -e "s|^url = .*|url = $URL|" "$D/ra.conf"
	mkdir -p "$D/ra.conf.d"
	{
		echo "[server]"
		if [ $# -gt 1 ]; then
			shift
			printf '%s\n' "$@"
		else
			printf '%s\n' "rate-limit = 60000" "rate-burst = 1000"
		fi
	} >"$D/ra.conf.d/test.conf"
	"$RA" contract add --name "$en_contract" --json \
	    >"$T/contract.json" 2>&1 || return 1
	C=$(ra_json_get contract_id <"$T/contract.json")
	"$RA" -v serve --listen "127.0.0.1:$PORT" 2>>"$T/ra.log" &
	RA_PID=$!
	tap_at_exit "kill $RA_PID"
	i=0
	until curl -s --cacert "$D/server-ca.crt" -o /dev/null \
	    "$URL/.well-known/est/cacerts"; do
		i=$((i + 1))
		[ $i -lt 100 ] && kill -0 $RA_PID 2>/dev/null || return 1
		sleep 0.05
	done
}

en_user()
{
	printf '%s\n' "$PW" | "$RA" user add "$C" "$1" --name "User $1" \
	    --password-stdin --invitation "$T/$1.inv" >/dev/null 2>&1 || return 1
	chmod 0644 "$T/$1.inv"
	"$RA" otp assign "$C" "$1" --json 2>/dev/null | ra_json_get otpauth_uri |
	    sed -n 's/.*[?&]secret=\([A-Z2-7]*\).*/\1/p' >"$T/$1.otp"
	[ -s "$T/$1.otp" ]
}

en_otp()
{
	oathtool --totp -b -N "now + ${2:-0} seconds" "$(cat "$T/$1.otp")"
}

en_count()
{
	printf '%s\n' "$PIN" | ${CMD_PREFIX:-} "$P11ENROLL" --json --pin-stdin \
	    token objects --login "$1" 2>/dev/null | python3 -c '
import json, sys
o = json.load(sys.stdin)["objects"]
k = sys.argv[1]
if k == "ca":
    print(sum(1 for x in o if x["kind"] == "certificate" and x.get("authority")))
elif k == "certificate":
    print(sum(1 for x in o if x["kind"] == "certificate" and not x.get("authority")))
else:
    print(sum(1 for x in o if x["kind"] == k))' "$2"
}

en_enroll()
{
	e_user=$1
	e_uri=$2
	shift 2
	printf '%s\n%s\n%s\n' "$PIN" "$PW" \
	    "$(en_otp "$e_user" ${E_OTP_LATER:+30})" |
	    env "$@" ${CMD_PREFIX:-} "$P11ENROLL" enroll \
	    --invitation "$T/$e_user.inv" --token "$e_uri" --secrets-stdin
}

en_ra_serial()
{
	sqlite3 "$D/ra.db" "SELECT upper(c.serial) FROM certificates c JOIN users u ON c.user = u.id WHERE u.user_id = '$1'"
}
