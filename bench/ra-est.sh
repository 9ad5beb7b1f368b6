#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# make bench-ra [N=requests per level]: p11enroll-ra serve on 127.0.0.1
# under bench/ra-est at 1, 8, 32 and 64 clients: (a) simpleenroll with
# pre-created enrollment tokens over keep-alive connections, (b)
# simplereenroll with a new TLS connection and client certificate per
# request, (c) session creation (Argon2id + TOTP).  Tokens, users and
# windows are inserted with SQL before the server starts (real tokens:
# the server sees only their SHA-256, as for those it makes itself).
# Each level's line ends with the load client's CPU (client_cpu_ms) and
# the server's (server_cpu_ms, from /proc) per request.
# Not a test; figures go to doc/benchmarks.md.
set -eu
N=${1:-4000}
RA=$top_builddir/server/p11enroll-ra
EST=$top_builddir/bench/ra-est
T=$(mktemp -d "${TMPDIR:-/tmp}/p11e-bench.XXXXXX")
trap 'kill $pid 2>/dev/null || true; rm -rf "$T"' EXIT INT TERM
D=$T/ra
PW=Bench-Passw0rd-1
export P11ENROLL_RA_DIR=$D
"$RA" init "$D" >/dev/null 2>&1
mkdir -p "$D/ra.conf.d"
cat >"$D/ra.conf.d/bench.conf" <<EOC
[server]
rate-limit = 100000
rate-burst = 100000
hash-workers = 64
${RA_THREADS:+threads = $RA_THREADS}
[policy]
renew-before = 400d
EOC
C=$("$RA" contract add --name Bench --json |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["contract_id"])')
levels=${LEVELS:-"1 8 32 64"}
total=$((4 * N))
nsess=$((1 + 8 + 32 + 64))
# session users: real ones (their OTP secrets are sealed by the RA)
i=0
: >"$T/sessions"
while [ "$i" -lt "$nsess" ]; do
	u=S$i
	printf '%s\n' "$PW" | "$RA" user add "$C" "$u" --name "$u" \
	    --password-stdin >/dev/null 2>&1
	"$RA" otp assign "$C" "$u" --json 2>/dev/null | python3 -c '
import json, re, sys
print(sys.argv[1], sys.argv[2], re.search("secret=([A-Z2-7]+)", json.load(sys.stdin)["otpauth_uri"]).group(1), sys.argv[3])' \
	    "$C" "$u" "$PW" >>"$T/sessions"
	i=$((i + 1))
done
# token users: rows as user add and a session would leave them
python3 - "$D/ra.db" "$C" "$total" "$T/tokens" <<'EOP'
import base64, hashlib, os, sqlite3, sys, time
db, contract, n, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
c = sqlite3.connect(db)
now = int(time.time())
cid, = c.execute("SELECT id FROM contracts WHERE contract_id = ?", (contract,)).fetchone()
ph, = c.execute("SELECT password_hash FROM users LIMIT 1").fetchone()
with open(out, "w") as f:
    for i in range(n):
        cur = c.execute("INSERT INTO users (contract, user_id, name, role, password_hash, created) VALUES (?, ?, ?, 'user', ?, ?)", (cid, "B%d" % i, "B%d" % i, ph, now))
        uid = cur.lastrowid
        cur = c.execute("INSERT INTO windows (user, opened, closes, reason, opened_by) VALUES (?, ?, ?, 'initial', 'bench')", (uid, now - 10, now + 86400))
        tok = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode()
        c.execute("INSERT INTO enroll_codes (hash, user, kind, window, created, expires) VALUES (?, ?, 'token', ?, ?, ?)", (hashlib.sha256(tok.encode()).digest(), uid, cur.lastrowid, now, now + 3600))
        f.write(tok + "\n")
c.commit()
EOP
${RA_WRAP:-} "$RA" serve --listen 127.0.0.1:0 --port-file "$T/port" 2>"$T/serve.log" &
pid=$!
i=0
while [ ! -s "$T/port" ] && [ "$i" -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
URL=https://127.0.0.1:$(cat "$T/port")
# the server's own CPU time (user + system, every thread) in clock ticks
# (under RA_WRAP, the wrapper's child unless the wrapper exec'd it, as env does)
srv=$pid
if [ -n "${RA_WRAP:-}" ]; then
	srv=$(pgrep -P "$pid" | head -n 1 || true)
	srv=${srv:-$pid}
fi
hz=$(getconf CLK_TCK)
srv_ticks() {
	sed 's/.*) //' "/proc/$srv/stat" | awk '{ print $12 + $13 }'
}
# one level of ra-est, its line followed by the server's CPU per request
est() {
	cnt=$1
	shift
	t0=$(srv_ticks)
	line=$(${EST_WRAP:-} "$EST" --cacert "$D/server-ca.crt" --requests "$cnt" "$@") || true
	t1=$(srv_ticks)
	echo "$line server_cpu_ms=$(awk -v d=$((t1 - t0)) -v hz="$hz" -v n="$cnt" \
	    'BEGIN { printf "%.3f", d * 1000 / hz / n }')"
}
echo "# $(nproc) CPUs, $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
skip=0
for n in $levels; do
	est "$N" --url "$URL/.well-known/est/simpleenroll" \
	    --mode enroll --clients "$n" --skip "$skip" \
	    --input "$T/tokens" --out "$T/pairs"
	skip=$((skip + N))
done
skip=0
for n in $levels; do
	m=$((N / 4))
	est "$m" --url "$URL/.well-known/est/simplereenroll" \
	    --mode reenroll --clients "$n" --skip "$skip" \
	    --input "$T/pairs"
	skip=$((skip + m))
done
skip=0
for n in $levels; do
	est "$n" --url "$URL/api/v1/enrollment/session" \
	    --mode session --clients "$n" --skip "$skip" \
	    --input "$T/sessions"
	skip=$((skip + n))
done
echo "# integrity: $(sqlite3 "$D/ra.db" 'PRAGMA integrity_check'), certificates: $(sqlite3 "$D/ra.db" 'SELECT count(*) FROM certificates'), synchronous FULL enforced at open"
# the stored key hash is the SHA-256 of the issued certificate's SPKI
row=$(sqlite3 "$D/ra.db" "SELECT hex(der) || ' ' || lower(hex(spki_sha256)) FROM certificates ORDER BY random() LIMIT 1")
got=$(printf '%s' "${row% *}" | xxd -r -p | openssl x509 -inform DER -pubkey -noout |
    openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1)
echo "# spki_sha256 of a random certificate: $([ "$got" = "${row#* }" ] && echo matches || echo MISMATCH)"
# the extensions of a random certificate, for comparison across changes
sqlite3 "$D/ra.db" "SELECT hex(der) FROM certificates ORDER BY random() LIMIT 1" |
    xxd -r -p | openssl x509 -inform DER -noout -ext basicConstraints,keyUsage,extendedKeyUsage,authorityKeyIdentifier,subjectKeyIdentifier 2>/dev/null |
    sed 's/^/# /' | tr -s ' '
