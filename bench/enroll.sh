#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# End-to-end user enrollment time (p11enroll enroll: key generation, the
# server session, CSR, issuance, token write, pair check) against p11enroll-ra
# serve on 127.0.0.1, a fresh SoftHSM2 token and user per run, next to the
# floor of its token operations measured alone through the same agent on
# the same kind of fresh token (token keygen, token csr, token import of a
# certificate for that key).  Prints Markdown tables: median and 90th
# percentile of N runs, milliseconds.
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

now_ms() { date +%s%N | cut -c1-13; }
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
	s=$(now_ms)
	en_enroll "$u" "pkcs11:token=e-$i" >"$T/out" 2>&1 ||
	    { cat "$T/out" >&2; exit 1; }
	e=$(now_ms)
	echo $((e - s)) >>"$T/s/total"
	sed -n 's/^  \(.*[a-z]\)  *\([0-9.]*\) ms$/\1|\2/p' "$T/out" |
	    while IFS='|' read -r step ms; do
		echo "$ms" >>"$T/s/step-$(echo "$step" | tr ' ' '_')"
	done
	# --- the floor: the same token operations alone
	new_token "f-$i"
	uri=pkcs11:token=f-$i
	s=$(now_ms)
	echo "$PIN" | "$P11ENROLL" --json --pin-stdin token keygen "$uri" \
	    >"$T/k.json" 2>/dev/null
	e=$(now_ms)
	echo $((e - s)) >>"$T/s/f-keygen"
	id=$(sed -n 's/^ *"id": "\([0-9a-f]*\)",*$/\1/p' "$T/k.json")
	s=$(now_ms)
	echo "$PIN" | "$P11ENROLL" --pin-stdin token csr "$uri" --id "$id" \
	    --subject "/O=bench/CN=$u" --out "$T/f.csr" >/dev/null 2>&1
	e=$(now_ms)
	echo $((e - s)) >>"$T/s/f-csr"
	openssl x509 -req -in "$T/f.csr" -CA "$D/ca.crt" -CAkey "$D/ca.key" \
	    -CAcreateserial -CAserial "$T/ca.srl" -days 2 -out "$T/f.pem" \
	    >/dev/null 2>&1
	cat "$T/f.pem" "$D/ca.crt" >"$T/chain.pem"
	s=$(now_ms)
	echo "$PIN" | "$P11ENROLL" --pin-stdin token import "$uri" \
	    "$T/chain.pem" >/dev/null 2>&1
	e=$(now_ms)
	echo $((e - s)) >>"$T/s/f-import"
	echo $(($(tail -n 1 "$T/s/f-keygen") + $(tail -n 1 "$T/s/f-csr") + \
	    $(tail -n 1 "$T/s/f-import"))) >>"$T/s/f-total"
done

echo "| enrollment (p11enroll enroll) | runs | median ms | p90 ms |"
echo "|---|---:|---:|---:|"
stats "end to end (command start to exit)" "$T/s/total"
for f in "$T"/s/step-*; do
	stats "step: $(basename "$f" | sed 's/^step-//; s/_/ /g')" "$f"
done
echo
echo "| floor (token operations alone, through the agent) | runs | median ms | p90 ms |"
echo "|---|---:|---:|---:|"
stats "token keygen ec-p256" "$T/s/f-keygen"
stats "token csr" "$T/s/f-csr"
stats "token import (leaf + CA)" "$T/s/f-import"
stats "sum of the three" "$T/s/f-total"
