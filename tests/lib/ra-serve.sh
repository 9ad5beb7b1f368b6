# SPDX-License-Identifier: BSD-3-Clause
# Helpers for the tests of `p11enroll-ra serve` (sourced after tap.sh and
# ra.sh).  Needs $T (a private temp dir) and sets D (the RA directory).
#
#   rs_init                   RA in $T/ra, test limits, contract $C
#   rs_start / rs_stop        the server (port in $P, log in $T/serve.log)
#   rs_user NAME [--admin]    user NAME (password $PW) with a TOTP secret
#   rs_otp NAME [SECONDS]     the user's code now (or now + SECONDS)
#   rs_req METHOD PATH ARGS   curl: $code, body in $T/body, headers $T/hdr
#   rs_session NAME [OTP]     POST the session; $code, $TOKEN
#   rs_csr NAME [ALG]         key $T/NAME.key + CSR (base64) $T/NAME.csr
#   rs_enroll CSR [AUTH]      POST simpleenroll with CSR (file)
#   rs_type                   the problem type of $T/body
#   rs_dump                   the database without the audit table

PW='Canary-Passw0rd-c4f1e2'

rs_init()
{
	D=$T/ra
	export P11ENROLL_RA_DIR=$D
	"$RA" init "$D" >/dev/null 2>&1 || tap_bail "init failed"
	mkdir -p "$D/ra.conf.d"
	# generous limits: the tests send many requests from one address
	cat >"$D/ra.conf.d/test.conf" <<EOF
[server]
threads = 8
rate-limit = 60000
rate-burst = 1000
hash-workers = 32
EOF
	C=$("$RA" contract add --name "しんきん商事" --json | ra_json_get contract_id)
}

rs_start()
{
	rm -f "$T/port"
	"$RA" -v serve --listen 127.0.0.1:0 --port-file "$T/port" \
	    >>"$T/serve.log" 2>&1 &
	RS_PID=$!
	tap_at_exit "kill $RS_PID"
	i=0
	while [ ! -s "$T/port" ] && [ "$i" -lt 200 ]; do
		sleep 0.05
		i=$((i + 1))
	done
	[ -s "$T/port" ] || return 1
	P=$(cat "$T/port")
	URL=https://127.0.0.1:$P
}

# rs_stop: SIGTERM, up to 10 s; $rs_rc is its exit status.
rs_stop()
{
	kill -TERM "$RS_PID"
	i=0
	while kill -0 "$RS_PID" 2>/dev/null && [ "$i" -lt 200 ]; do
		sleep 0.05
		i=$((i + 1))
	done
	wait "$RS_PID"
	rs_rc=$?
}

rs_user()
{
	printf '%s\n' "$PW" | "$RA" user add "$C" "$1" --name "$1" \
	    --password-stdin $2 >/dev/null 2>&1 || tap_bail "user add $1"
	"$RA" otp assign "$C" "$1" --json >"$T/$1.otp" 2>/dev/null ||
	    tap_bail "otp assign $1"
	python3 -c 'import json,sys,re; print(re.search("secret=([A-Z2-7]+)", json.load(open(sys.argv[1]))["otpauth_uri"]).group(1))' \
	    "$T/$1.otp" >"$T/$1.secret"
}

rs_otp()
{
	oathtool --totp -b -N "now + ${2:-0} sec" "$(cat "$T/$1.secret")"
}

rs_req()
{
	rq_m=$1
	rq_p=$2
	shift 2
	code=$(curl -sS --noproxy '*' --max-time 20 --cacert "$D/server-ca.crt" \
	    -X "$rq_m" -D "$T/hdr" -o "$T/body" -w '%{http_code}' "$@" \
	    "$URL$rq_p") || code=000
}

rs_session()
{
	rs_otp_val=${2:-$(rs_otp "$1")}
	printf '{"contract_id":"%s","user_id":"%s","password":"%s","otp":"%s"}' \
	    "$C" "$1" "$PW" "$rs_otp_val" >"$T/sess.json"
	rs_req POST /api/v1/enrollment/session \
	    -H 'Content-Type: application/json' --data-binary @"$T/sess.json"
	TOKEN=
	[ "$code" = 200 ] && TOKEN=$(ra_json_get token <"$T/body")
	return 0
}

rs_csr()
{
	case ${2:-ec} in
	ec) rs_kopt="-newkey ec -pkeyopt ec_paramgen_curve:P-256" ;;
	rsa1024) rs_kopt="-newkey rsa:1024" ;;
	p192) rs_kopt="-newkey ec -pkeyopt ec_paramgen_curve:P-192" ;;
	same) rs_kopt="-key $T/$1.key" ;;
	esac
	if [ "${2:-ec}" = same ]; then
		openssl req -new $rs_kopt -subj / -outform DER \
		    -out "$T/$1.der" 2>/dev/null
	else
		openssl req -new $rs_kopt -nodes -keyout "$T/$1.key" -subj / \
		    -outform DER -out "$T/$1.der" 2>/dev/null
	fi
	base64 "$T/$1.der" >"$T/$1.csr"
}

rs_enroll()
{
	rs_f=$1
	shift
	rs_req POST /.well-known/est/simpleenroll \
	    -H 'Content-Type: application/pkcs10' --data-binary @"$rs_f" "$@"
}

rs_type()
{
	python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["type"])' \
	    "$T/body" 2>/dev/null
}

# rs_cert OUT: the certificate of a certs-only reply ($T/body) as PEM.
rs_cert()
{
	base64 -d "$T/body" | openssl pkcs7 -inform DER -print_certs \
	    2>/dev/null | openssl x509 -out "$1" 2>/dev/null
}

rs_dump()
{
	sqlite3 "$D/ra.db" .dump | grep -v '^INSERT INTO audit'
}

# rs_problem DESC STATUS TYPE: the last answer was that problem.
rs_problem()
{
	rs_t=$(rs_type)
	if [ "$code" = "$2" ] && [ "$rs_t" = "$3" ]; then
		tap_ok "$1"
	else
		tap_diag "got $code $rs_t: $(head -c 300 "$T/body")"
		tap_fail "$1"
	fi
}

# rs_same DESC BEFORE: the database (without audit) is still BEFORE.
rs_same()
{
	if [ "$(rs_dump)" = "$2" ]; then
		tap_ok "$1"
	else
		tap_fail "$1"
	fi
}
