# SPDX-License-Identifier: BSD-3-Clause
# The agent's credentials as `p11enroll --json list` shows them (sourced
# after agent.sh; python3 required).
#
#   cred_field CRED KEY        a member (a.b for nested) or ""
#   cred_wait CRED KEY VALUE SECONDS
#                              polls until the member has that value
#   cred_require, cred_setup, cred_faketime_agent, cred_ra_restart,
#   cred_desktop: below
#   cred_enroll USER SERVICE TOKEN
#                              enrolls USER (en_user first) on the service
#                              with $PIN, $PW and a TOTP code; prints the
#                              credential's name

cred_field()
{
	"$P11ENROLL" --no-autostart --json list 2>/dev/null | python3 -c '
import json, sys
try:
    c = [x for x in json.load(sys.stdin)["credentials"] if x["credential"] == sys.argv[1]][0]
except (ValueError, IndexError, KeyError):
    c = {}
v = c
for k in sys.argv[2].split("."):
    v = v.get(k, "") if isinstance(v, dict) else ""
print(v)' "$1" "$2"
}

cred_wait()
{
	cw_end=$(($(date +%s) + $4))
	while [ "$(cred_field "$1" "$2")" != "$3" ]; do
		[ "$(date +%s)" -lt $cw_end ] || return 1
		sleep 0.5
	done
}

cred_enroll()
{
	printf '%s\n%s\n%s\n' "$PIN" "$PW" "$(en_otp "$1")" |
	    "$P11ENROLL" enroll --service "$2" --token "$3" \
	    --contract-id "$C" --user-id "$1" --secrets-stdin >"$T/$1.out" \
	    2>&1 || { cat "$T/$1.out" >&2; return 1; }
	sed -n 's/^enrolled: //p' "$T/$1.out"
}

# cred_require [CMD...]: skips the test without the tools of an
# enrollment against p11enroll-ra serve (and CMD...)
cred_require()
{
	for cr_c in softhsm2-util oathtool python3 sqlite3 openssl curl "$@"; do
		command -v "$cr_c" >/dev/null 2>&1 ||
		    tap_skip_all "$cr_c not installed"
	done
	"$RA" --help 2>/dev/null | grep -q '^  serve' ||
	    tap_skip_all "p11enroll-ra serve not built"
}

# cred_setup LABEL PIN [CONF...]: $T with the agent's environment; a
# SoftHSM2 token LABEL ($TOK, $SERIAL) with PIN ($PIN, also in the 0600
# file $T/pin); p11enroll-ra serving ($URL) with the [server] lines
# CONF... (after no rate limit; "[policy]" and its lines may follow);
# user S0001 ($SPIN: the server's pin from the invitation); $LOG the
# agent's log.
cred_setup()
{
	tap_tmpdir T
	agent_env "$T"
	PIN=$2
	softhsm_setup "$1" "$PIN" >&2 ||
	    tap_bail "cannot create a SoftHSM2 token"
	SERIAL=$SOFTHSM_SERIAL
	TOK=pkcs11:token=$1
	shift 2
	en_ra_start しんきん商事 "rate-limit = 60000" "rate-burst = 1000" "$@" ||
	    { cat "$T/ra.log" >&2; tap_bail "p11enroll-ra serve did not start"; }
	en_user S0001 || tap_bail "user add failed"
	SPIN=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["server_pin"])' "$T/S0001.inv")
	printf '%s\n' "$PIN" >"$T/pin"
	chmod 0600 "$T/pin"
	LOG=$XDG_RUNTIME_DIR/p11enroll/agent.log
}

# cred_faketime_agent SPEC: the agent the CLI starts runs under
# `faketime -f SPEC` (SPEC may be $(cat FILE), evaluated at each start)
cred_faketime_agent()
{
	cat >"$T/agentd" <<EOS
#!/bin/sh
exec faketime -f "$1" "$P11ENROLLD" "\$@"
EOS
	chmod 0755 "$T/agentd"
	P11ENROLL_AGENT=$T/agentd
}

# cred_ra_restart [CONF...]: p11enroll-ra serve again on $PORT with the
# [server] lines CONF... (after no rate limit), and waits until it answers
cred_ra_restart()
{
	kill "$RA_PID"
	wait "$RA_PID" 2>/dev/null
	{
		echo "[server]"
		printf '%s\n' "rate-limit = 60000" "rate-burst = 1000" "$@"
	} >"$D/ra.conf.d/test.conf"
	"$RA" -v serve --listen "127.0.0.1:$PORT" 2>>"$T/ra.log" &
	RA_PID=$!
	tap_at_exit "kill $RA_PID"
	cr_i=0
	until curl -s --cacert "$D/server-ca.crt" -o /dev/null \
	    "$URL/.well-known/est/cacerts"; do
		cr_i=$((cr_i + 1))
		[ $cr_i -lt 200 ] || return 1
		sleep 0.05
	done
}

# cred_desktop: a notify-send first on PATH that appends its arguments,
# each followed by '|', as one line of $T/desktop.log, and a session bus
# address, so that the agent notifies the desktop through it
cred_desktop()
{
	mkdir -p "$T/bin"
	cat >"$T/bin/notify-send" <<EOS
#!/bin/sh
printf '%s|' "\$@" >>'$T/desktop.log'
echo >>'$T/desktop.log'
EOS
	chmod 0755 "$T/bin/notify-send"
	: >"$T/desktop.log"
	PATH=$T/bin:$PATH
	DBUS_SESSION_BUS_ADDRESS=unix:path=$T/no-bus
	export PATH DBUS_SESSION_BUS_ADDRESS
}
