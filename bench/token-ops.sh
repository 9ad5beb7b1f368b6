#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Times the token verbs end to end (p11enroll -> agent -> p11-kit ->
# SoftHSM2) against the floor of the same token operation done directly
# by pkcs11-tool, on a throwaway SoftHSM2 token.  Prints a Markdown table
# (median and 90th percentile of N runs, in milliseconds).
#
#   bench/token-ops.sh [N]        (from a build directory: top_builddir=.)
#
# Not a test: figures depend on the machine; doc/benchmarks.md records them.
set -eu
N=${1:-20}
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
top_builddir=${top_builddir:-.}
export top_srcdir top_builddir
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/softhsm.sh"
. "$top_srcdir/tests/lib/agent.sh"
export TPM2_PKCS11_BACKEND=none

tap_tmpdir T
agent_env "$T"
softhsm_setup bench 1234 12345678 >/dev/null
uri="pkcs11:token=bench"
pin() { echo 1234; }

now_ms() { date +%s%N | cut -c1-13; }

# stats NAME FILE: median and p90 of the numbers in FILE
stats()
{
	sort -n "$2" | awk -v name="$1" '{ v[NR] = $1 }
	    END { m = v[int((NR + 1) / 2)]; p = v[int(NR * 0.9 + 0.999)];
		printf "| %s | %d | %d | %d |\n", name, NR, m, p }'
}

# run NAME COUNT CMD...: times CMD (PIN on stdin) COUNT times
run()
{
	name=$1 count=$2
	shift 2
	: >"$T/t"
	i=0
	while [ $i -lt "$count" ]; do
		s=$(now_ms)
		pin | "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }
		e=$(now_ms)
		echo $((e - s)) >>"$T/t"
		i=$((i + 1))
	done
	stats "$name" "$T/t"
}

"$P11ENROLL" status >/dev/null # start the agent first
echo "| operation | runs | median ms | p90 ms |"
echo "|---|---:|---:|---:|"
run "agent: GetInfo (status)" "$N" "$P11ENROLL" status
run "agent: tokens" "$N" "$P11ENROLL" tokens "$uri"
run "agent: keygen ec-p256" "$N" "$P11ENROLL" --pin-stdin token keygen "$uri"
run "agent: keygen ec-p384" "$N" "$P11ENROLL" --pin-stdin token keygen "$uri" --type ec-p384
run "agent: keygen rsa-2048" 5 "$P11ENROLL" --pin-stdin token keygen "$uri" --type rsa-2048
pin | "$P11ENROLL" --pin-stdin token keygen "$uri" --id 0b0b >/dev/null
run "agent: csr (ec-p256)" "$N" "$P11ENROLL" --pin-stdin token csr "$uri" --id 0b0b --subject /CN=bench
run "agent: objects --login" "$N" "$P11ENROLL" --pin-stdin token objects "$uri" --login
run "floor: pkcs11-tool keygen ec-p256" "$N" pkcs11-tool --module "$SOFTHSM_MODULE" \
    --token-label bench --login --pin 1234 --keypairgen --key-type EC:prime256v1
run "floor: pkcs11-tool keygen rsa-2048" 5 pkcs11-tool --module "$SOFTHSM_MODULE" \
    --token-label bench --login --pin 1234 --keypairgen --key-type rsa:2048
run "floor: pkcs11-tool list objects" "$N" pkcs11-tool --module "$SOFTHSM_MODULE" \
    --token-label bench --login --pin 1234 -O
