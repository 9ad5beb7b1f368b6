#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# End-to-end user enrollment time (p11enroll enroll: key generation, the
# server session, CSR, issuance, token write, pair check) against p11enroll-ra
# serve on 127.0.0.1, a fresh SoftHSM2 token and user per run, next to the
# floor measured in the same run on another fresh token and user:
# bench/enroll-floor, one process doing only the work an enrollment cannot
# do without (module load and login, key generation, one signature, the
# session and simpleenroll over one TLS connection, the certificate
# object).  Prints Markdown tables: median and 90th percentile of N runs,
# milliseconds, and the ratio of the two run by run.  Only the command is
# timed (its input, with oathtool's one-time password, is made before), and
# both tokens are deleted after each run, so that every run sees the same
# few tokens (SoftHSM2 reads them all at each C_Initialize).
#
#   bench/enroll.sh [N]        (from a build directory: top_builddir=.)
#
# Not a test: figures depend on the machine; doc/benchmarks.md records them.
set -eu
N=${1:-10}
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
top_builddir=${top_builddir:-.}
export top_srcdir top_builddir
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/softhsm.sh"
. "$top_srcdir/tests/lib/agent.sh"
. "$top_srcdir/tests/lib/ra.sh"
. "$top_srcdir/tests/lib/enroll.sh"
export TPM2_PKCS11_BACKEND=none

tap_tmpdir T
agent_env "$T"
PIN=1234
softhsm_setup bench-0 "$PIN" 12345678 >/dev/null
en_ra_start || { cat "$T/ra.log" >&2; exit 1; }

now_ns() { date +%s%N; }
stats()
{
	sort -n "$2" | awk -v name="$1" '{ v[NR] = $1 }
	    END { m = v[int((NR + 1) / 2)]; p = v[int(NR * 0.9 + 0.999)];
		printf "| %s | %d | %.1f | %.1f |\n", name, NR, m, p }'
}
new_token()
{
	softhsm2-util --init-token --free --label "$1" --pin "$PIN" \
	    --so-pin 12345678 >/dev/null 2>&1
}

"$P11ENROLL" status >/dev/null # the agent is up before the first run
mkdir "$T/s"
i=0
while [ $i -lt "$N" ]; do
	i=$((i + 1))
	# --- the enrollment
	u=B$(printf '%04d' $i)
	new_token "e-$i"
	en_user "$u"
	# the input (the one-time password: oathtool) before the clock
	# starts, as the floor's: only the command is timed
	printf '%s\n%s\n%s\n' "$PIN" "$PW" "$(en_otp "$u")" >"$T/in"
	s=$(now_ns)
	"$P11ENROLL" enroll --invitation "$T/$u.inv" --token \
	    "pkcs11:token=e-$i" --secrets-stdin <"$T/in" >"$T/out" 2>&1 ||
	    { cat "$T/out" >&2; exit 1; }
	e=$(now_ns)
	awk -v s="$s" -v e="$e" 'BEGIN { printf "%.1f\n", (e - s) / 1e6 }' \
	    >>"$T/s/total"
	sed -n 's/^  \(.*[a-z]\)  *\([0-9.]*\) ms$/\1|\2/p' "$T/out" |
	    while IFS='|' read -r step ms; do
		echo "$ms" >>"$T/s/step-$(echo "$step" | tr ' ' '_')"
	done
	# --- the floor: one process, the same work without the agent
	new_token "f-$i"
	en_user "F$i"
	printf '%s\n%s\n%s\n' "$PIN" "$PW" "$(en_otp "F$i")" |
	    "$top_builddir/bench/enroll-floor" --module "$SOFTHSM_MODULE" \
	    --token "f-$i" --url "$URL" --cacert "$D/server-ca.crt" \
	    --contract "$C" --user "F$i" >"$T/f.out" ||
	    { cat "$T/f.out" >&2; exit 1; }
	set -- $(cat "$T/f.out")
	while [ $# -ge 2 ]; do
		echo "$2" >>"$T/s/f-$1"
		shift 2
	done
	awk -v a="$(tail -n 1 "$T/s/total")" -v b="$(tail -n 1 "$T/s/f-total")" \
	    'BEGIN { printf "%.3f\n", a / b }' >>"$T/s/ratio"
	# as on a user's machine, a few tokens: SoftHSM2 reads every token
	# at C_Initialize, so N runs' tokens would slow each later run
	for t in "e-$i" "f-$i"; do
		softhsm2-util --delete-token --token "$t" >/dev/null 2>&1 ||
		    { echo "cannot delete token $t" >&2; exit 1; }
	done
done

echo "| enrollment (p11enroll enroll) | runs | median ms | p90 ms |"
echo "|---|---:|---:|---:|"
stats "end to end (command start to exit)" "$T/s/total"
for f in "$T"/s/step-*; do
	stats "step: $(basename "$f" | sed 's/^step-//; s/_/ /g')" "$f"
done
echo
echo "| floor (one process: bench/enroll-floor) | runs | median ms | p90 ms |"
echo "|---|---:|---:|---:|"
for step in login keygen csr session issuance write total; do
	stats "$step" "$T/s/f-$step"
done
echo
sort -n "$T/s/ratio" | awk '{ v[NR] = $1 } END {
	printf "ratio end to end / floor, run by run: median %.2f, p90 %.2f\n",
	    v[int((NR + 1) / 2)], v[int(NR * 0.9 + 0.999)] }'
