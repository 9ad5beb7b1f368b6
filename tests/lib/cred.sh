# SPDX-License-Identifier: BSD-3-Clause
# The agent's credentials as `p11enroll --json list` shows them (sourced
# after agent.sh; python3 required).
#
#   cred_field CRED KEY        a member (a.b for nested) or ""
#   cred_wait CRED KEY VALUE SECONDS
#                              polls until the member has that value
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
