# SPDX-License-Identifier: BSD-3-Clause
# Browser end-to-end helpers (sourced after tap.sh); what works on this
# platform is recorded in research/browser.md.
#
#   browser_check        prints why the browser tests cannot run (and
#                        returns 1), or returns 0: chromium, nginx,
#                        modutil/certutil, curl, timeout, python3
#   browser_require [enroll]
#                        the checks of every browser test: p11fault
#                        built ($BROWSER_P11FAULT), root with setpriv
#                        (p11kit_env_check), browser_check, uid 65534
#                        can run the agent; with "enroll" also what an
#                        enrollment from p11enroll-ra serve needs; skips
#                        the test (or bails) with the reason otherwise
#   CHROMIUM             the Chromium binary (the Debian wrapper
#                        /usr/bin/chromium prints shell noise: the real
#                        one is /usr/lib/chromium/chromium)
#   CHROMIUM_FLAGS       headless on a closed network
#   browser_nginx_start DIR CERT KEY CLIENT_CA [CRL]
#                        nginx on 127.0.0.1, a free port ($NGINX_PORT),
#                        its prefix and temp dirs in DIR ($NGINX_DIR),
#                        TLS 1.2 and 1.3, a client certificate from
#                        CLIENT_CA required; "/" answers a page with the
#                        client's subject and serial; access.log lines
#                        "STATUS verify=.. serial=.. dn=".." proto=..
#                        ua=".."".  With CRL (PEM), clients are also
#                        checked against it (kill -HUP $NGINX_PID
#                        re-reads it).  NGINX_VERIFY_DEPTH (default
#                        nginx's 1) is its ssl_verify_depth: 2 lets a
#                        client present an intermediate CA.  Stopped at
#                        exit.
#   browser_user_env DIR [SUBDIR...]
#                        the agent's environment for uid 65534 under DIR
#                        (DIR 0755; run/ 0700, state/, etc/ and each
#                        SUBDIR owned by 65534; XDG_RUNTIME_DIR,
#                        XDG_STATE_HOME, P11ENROLL_CONF, P11ENROLL_AGENT
#                        exported); the agent it starts (through
#                        p11kit_as_user) is stopped at exit
#   browser_agent_stop   stops that agent, if any
#   browser_token TOKEN PIN P11FAULT
#                        a SoftHSM2 token behind the p11fault module
#                        P11FAULT, registered only in uid 65534's p11-kit
#                        config (p11kit-env.sh); sets URI, the PIN file
#                        BROWSER_PIN_FILE (0600, 65534's) and the
#                        browser's p11fault config BROWSER_P11FAULT_CONF
#                        (the test-only auto-login; the agent's
#                        P11FAULT_CONF has none)
#   browser_enroll USER [CONF...]
#                        after en_ra_start: USER added at the RA and
#                        enrolled by p11enroll as 65534 onto URI through
#                        the service "ra" (token URI with the PIN file;
#                        each CONF one more line of the service); sets
#                        CRED, or returns 1 with the output on stderr
#   browser_ra_cert_pem DB SERIAL
#                        the certificate the RA (database DB) issued
#                        with SERIAL, PEM (public: no token needed)
#   browser_tls_client TOKEN ID CERT PIN CAFILE
#                        openssl s_client to nginx ($NGINX_PORT) with
#                        the key ID (hex) on the token labelled TOKEN
#                        (libp11's engine) and the certificate CERT, the
#                        PIN on a descriptor of its own; the requests on
#                        stdin, the answers on stdout (120 s at most)
#   browser_chromium_prefs FILE ORIGIN ISSUER_CN
#                        writes a Chromium Default/Preferences that
#                        selects the client certificate issued by
#                        ISSUER_CN for ORIGIN without asking (headless
#                        Chromium otherwise waits on an invisible picker)

CHROMIUM_FLAGS="--headless --no-sandbox --disable-gpu --disable-quic
--no-first-run --disable-background-networking --disable-component-update
--disable-sync"

browser_check()
{
	CHROMIUM=
	for b in /usr/lib/chromium/chromium "$(command -v chromium 2>/dev/null)"; do
		[ -n "$b" ] && [ -x "$b" ] && CHROMIUM=$b && break
	done
	if [ -z "$CHROMIUM" ]; then
		echo "chromium not installed (Debian package chromium)"
		return 1
	fi
	NGINX=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
	if [ ! -x "$NGINX" ]; then
		echo "nginx not installed (Debian package nginx-light)"
		return 1
	fi
	for t in modutil certutil; do
		command -v $t >/dev/null 2>&1 || {
			echo "$t not installed (Debian package libnss3-tools)"
			return 1
		}
	done
	for t in curl timeout python3 setsid; do
		command -v $t >/dev/null 2>&1 || {
			echo "$t not installed"
			return 1
		}
	done
	export CHROMIUM NGINX
	return 0
}

browser_require()
{
	if [ "${1-}" = enroll ]; then
		for c in softhsm2-util oathtool python3 sqlite3 openssl curl; do
			command -v $c >/dev/null 2>&1 ||
			    tap_skip_all "$c not installed"
		done
		"$RA" --help 2>/dev/null | grep -q '^  serve' ||
		    tap_skip_all "p11enroll-ra serve not built"
	fi
	BROWSER_P11FAULT=$top_builddir/tests/p11fault/p11fault.so
	[ -r "$BROWSER_P11FAULT" ] || tap_bail "$BROWSER_P11FAULT not built"
	br_reason=$(p11kit_env_check) || tap_skip_all "$br_reason"
	br_reason=$(browser_check) || tap_skip_all "$br_reason"
	browser_check >/dev/null # again, for its variables
	setpriv --reuid=65534 --regid=65534 --clear-groups \
	    test -x "$P11ENROLLD" || tap_skip_all \
	    "uid 65534 cannot run $P11ENROLLD (build directory mode)"
}

browser_ra_cert_pem()
{
	sqlite3 "$1" "SELECT hex(der) FROM certificates WHERE upper(serial) = upper('$2')" |
	    python3 -c '
import base64, binascii, sys
d = base64.encodebytes(binascii.unhexlify(sys.stdin.read().strip())).decode()
sys.stdout.write("-----BEGIN CERTIFICATE-----\n" + d + "-----END CERTIFICATE-----\n")'
}

browser_tls_client()
(
	pct=$(printf '%s' "$2" | sed 's/../%&/g')
	exec 3<&0
	printf '%s\n' "$4" | {
		exec 4<&0
		timeout 120 openssl s_client -quiet \
		    -connect "127.0.0.1:$NGINX_PORT" -CAfile "$5" \
		    -verify_return_error -engine pkcs11 -keyform engine \
		    -key "pkcs11:token=$1;id=$pct;type=private" \
		    -cert "$3" -pass fd:4 <&3
	}
)

browser_free_port()
{
	python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

browser_nginx_stop()
{
	[ -n "${NGINX_PID-}" ] || return 0
	kill "$NGINX_PID" 2>/dev/null
	i=0
	while kill -0 "$NGINX_PID" 2>/dev/null && [ $i -lt 100 ]; do
		sleep 0.05
		i=$((i + 1))
	done
	kill -KILL -- "-$NGINX_PID" 2>/dev/null
	NGINX_PID=
}

browser_nginx_start()
{
	NGINX_DIR=$1
	mkdir -p "$NGINX_DIR/tmp" "$NGINX_DIR/logs" || return 1
	tries=0
	while [ $tries -lt 5 ]; do
		tries=$((tries + 1))
		NGINX_PORT=$(browser_free_port) || return 1
		cat >"$NGINX_DIR/nginx.conf" <<EOF
daemon off;
worker_processes 1;
pid $NGINX_DIR/nginx.pid;
error_log $NGINX_DIR/error.log info;
events { worker_connections 64; }
http {
	client_body_temp_path $NGINX_DIR/tmp/body;
	proxy_temp_path $NGINX_DIR/tmp/proxy;
	fastcgi_temp_path $NGINX_DIR/tmp/fastcgi;
	uwsgi_temp_path $NGINX_DIR/tmp/uwsgi;
	scgi_temp_path $NGINX_DIR/tmp/scgi;
	log_format tls '\$status verify=\$ssl_client_verify serial=\$ssl_client_serial dn="\$ssl_client_s_dn" proto=\$ssl_protocol ua="\$http_user_agent"';
	access_log $NGINX_DIR/access.log tls;
	server {
		listen 127.0.0.1:$NGINX_PORT ssl;
		ssl_certificate $2;
		ssl_certificate_key $3;
		ssl_client_certificate $4;
		ssl_verify_client on;
		ssl_verify_depth ${NGINX_VERIFY_DEPTH:-1};
		${5:+ssl_crl $5;}
		ssl_protocols TLSv1.2 TLSv1.3;
		location / {
			default_type text/html;
			return 200 '<!DOCTYPE html><html><head><title>p11enroll test bank</title></head><body style="font-family:sans-serif;margin:2em"><h1 id="r">Logged in with the certificate on the token</h1><p id="subject">subject: \$ssl_client_s_dn</p><p id="serial">serial: \$ssl_client_serial</p><p id="issuer">issuer: \$ssl_client_i_dn</p><p id="proto">\$ssl_protocol, client certificate \$ssl_client_verify</p></body></html>';
		}
	}
}
EOF
		setsid "$NGINX" -p "$NGINX_DIR" -c "$NGINX_DIR/nginx.conf" \
		    -e "$NGINX_DIR/error.log" >"$NGINX_DIR/stderr" 2>&1 &
		NGINX_PID=$!
		tap_at_exit browser_nginx_stop
		i=0
		while [ $i -lt 100 ]; do
			if ! kill -0 "$NGINX_PID" 2>/dev/null; then
				break
			fi
			if curl -s -o /dev/null --max-time 2 -k \
			    "https://127.0.0.1:$NGINX_PORT/"; then
				export NGINX_DIR NGINX_PORT NGINX_PID
				return 0
			fi
			sleep 0.05
			i=$((i + 1))
		done
		cat "$NGINX_DIR/stderr" "$NGINX_DIR/error.log" >&2
		browser_nginx_stop
		# the port may have been taken in between: another one
		grep -q 'Address already in use' "$NGINX_DIR/error.log" \
		    2>/dev/null || return 1
	done
	return 1
}

browser_agent_stop()
{
	p=$(p11kit_as_user "$P11ENROLL" --no-autostart --json status \
	    2>/dev/null | sed -n 's/^ *"pid": \([0-9]*\),*$/\1/p')
	[ -n "$p" ] || return 0
	kill "$p" 2>/dev/null
	i=0
	while kill -0 "$p" 2>/dev/null && [ $i -lt 100 ]; do
		sleep 0.05
		i=$((i + 1))
	done
}

browser_user_env()
{
	bu_dir=$1
	shift
	chmod 0755 "$bu_dir"
	mkdir -p "$bu_dir/run" "$bu_dir/state" "$bu_dir/etc" || return 1
	for d in "$@"; do
		mkdir -p "$bu_dir/$d" && chown -R 65534:65534 "$bu_dir/$d" ||
		    return 1
	done
	chmod 0700 "$bu_dir/run"
	chown -R 65534:65534 "$bu_dir/run" "$bu_dir/state" || return 1
	XDG_RUNTIME_DIR=$bu_dir/run
	XDG_STATE_HOME=$bu_dir/state
	P11ENROLL_CONF=$bu_dir/etc/p11enroll.conf
	P11ENROLL_AGENT=$P11ENROLLD
	export XDG_RUNTIME_DIR XDG_STATE_HOME P11ENROLL_CONF P11ENROLL_AGENT
	tap_at_exit browser_agent_stop
}

browser_token()
{
	softhsm_setup "$1" "$2" >&2 || return 1
	chown -R 65534:65534 "$SOFTHSM_DIR"
	chmod 0755 "$SOFTHSM_DIR"
	p11kit_env_setup || return 1
	p11kit_env_add_module p11fault "$3" || return 1
	URI=pkcs11:token=$1
	P11FAULT_CONF=$P11KIT_HOME/p11fault-agent.conf
	BROWSER_PIN_FILE=$P11KIT_HOME/pin
	BROWSER_P11FAULT_CONF=$P11KIT_HOME/p11fault-browser.conf
	export P11FAULT_CONF
	printf 'module = %s\n' "$SOFTHSM_MODULE" >"$P11FAULT_CONF"
	printf '%s\n' "$2" >"$BROWSER_PIN_FILE"
	chmod 0600 "$BROWSER_PIN_FILE"
	printf 'module = %s\nlogin-pin-file = %s\n' "$SOFTHSM_MODULE" \
	    "$BROWSER_PIN_FILE" >"$BROWSER_P11FAULT_CONF"
	chown 65534:65534 "$P11FAULT_CONF" "$BROWSER_PIN_FILE" \
	    "$BROWSER_P11FAULT_CONF"
}

browser_enroll()
{
	be_user=$1
	shift
	en_user "$be_user" || return 1
	be_spin=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["server_pin"])' "$T/$be_user.inv")
	{
		printf '%s\n' "[service ra]" "url = $URL" \
		    "server-pin = $be_spin" \
		    "token = $URI?pin-source=file:$BROWSER_PIN_FILE"
		printf '%s\n' "$@"
	} >"$P11ENROLL_CONF"
	chmod 0644 "$P11ENROLL_CONF"
	printf '%s\n%s\n%s\n' "$(cat "$BROWSER_PIN_FILE")" "$PW" \
	    "$(en_otp "$be_user")" |
	    p11kit_as_user "$P11ENROLL" enroll --service ra --token "$URI" \
	    --contract-id "$C" --user-id "$be_user" --secrets-stdin \
	    >"$T/enroll.out" 2>&1
	be_rc=$?
	cat "$T/enroll.out" >&2
	CRED=$(sed -n 's/^enrolled: //p' "$T/enroll.out")
	[ $be_rc = 0 ] && [ -n "$CRED" ]
}

browser_chromium_prefs()
{
	python3 - "$1" "$2" "$3" <<'EOF'
import json, sys
path, origin, cn = sys.argv[1:4]
prefs = {"profile": {"content_settings": {"exceptions": {
    "auto_select_certificate": {
        origin + ",*": {"setting": {"filters": [{"ISSUER": {"CN": cn}}]}}}}}}}
with open(path, "w") as f:
    json.dump(prefs, f)
EOF
}
