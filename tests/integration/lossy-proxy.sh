#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# tests/tools/lossy-proxy against a real HTTP server on 127.0.0.1: a
# dropped response arrives at the server but never at the client.

. "$top_srcdir/tests/lib/tap.sh"

proxy=$top_builddir/tests/tools/lossy-proxy
[ -x "$proxy" ] || tap_bail "$proxy not built"
command -v python3 >/dev/null 2>&1 ||
    tap_skip_all "python3 not installed (Debian package python3)"
command -v curl >/dev/null 2>&1 ||
    tap_skip_all "curl not installed (Debian package curl)"

tap_plan 21
tap_tmpdir dir

# wait_for FILE PATTERN: up to 10 s in 50 ms steps for PATTERN in FILE.
wait_for()
{
	i=0
	while [ "$i" -lt 200 ]; do
		grep -Eq "$2" "$1" 2>/dev/null && return 0
		sleep 0.05
		i=$((i + 1))
	done
	return 1
}

# wait_exit PID: up to 10 s for PID to end; sets rc to its status.
wait_exit()
{
	i=0
	while kill -0 "$1" 2>/dev/null && [ "$i" -lt 200 ]; do
		sleep 0.05
		i=$((i + 1))
	done
	kill -0 "$1" 2>/dev/null && { rc=timeout; return 1; }
	wait "$1"
	rc=$?
	return 0
}

# start_proxy NAME ARGS...: runs the proxy in the background; sets pid
# and port (read from its --port-file).
start_proxy()
{
	name=$1
	shift
	"$proxy" --port-file "$dir/$name.port" --log "$dir/$name.log" "$@" \
	    >"$dir/$name.out" 2>"$dir/$name.err" &
	pid=$!
	tap_at_exit "kill $pid"
	wait_for "$dir/$name.port" '^[0-9]+$' || return 1
	port=$(cat "$dir/$name.port")
}

# fetch URL: sets curl_rc and code (the HTTP status), body in $dir/body.
fetch()
{
	rm -f "$dir/body"
	code=$(curl -sS --noproxy '*' --max-time 10 -o "$dir/body" \
	    -w '%{http_code}' "$@" 2>"$dir/curl.err")
	curl_rc=$?
	tap_diag "curl $*: exit $curl_rc, $(cat "$dir/curl.err")"
}

requests()
{
	grep -c '"GET /hello.txt HTTP/1.1"' "$dir/server.err"
}

mkdir "$dir/www"
echo "hello $$ $(date +%s)" >"$dir/www/hello.txt"
# The server prints the port it got from port 0; -u: unbuffered.
(cd "$dir/www" && exec python3 -u -m http.server --bind 127.0.0.1 0) \
    >"$dir/server.out" 2>"$dir/server.err" &
server=$!
tap_at_exit "kill $server"
wait_for "$dir/server.out" 'port [0-9]+' || tap_bail "http.server did not start"
sport=$(sed -n 's/.* port \([0-9]*\).*/\1/p' "$dir/server.out" | head -n 1)
tap_diag "http.server on 127.0.0.1:$sport"

# 1. Drop the first response, forward the second.
start_proxy p1 --connect "127.0.0.1:$sport" --drop-response 1
tap_check "proxy writes its port to --port-file" [ -n "$port" ]
tap_check "... and as the first line of stdout" \
    [ "$(head -n 1 "$dir/p1.out")" = "$port" ]
fetch "http://127.0.0.1:$port/hello.txt"
tap_check "connection 1: curl gets an empty reply (exit 52)" \
    eval '[ "$curl_rc" -eq 52 ] && grep -q "Empty reply from server" "$dir/curl.err"'
tap_check "connection 1: the request reached the server" [ "$(requests)" -eq 1 ]
fetch "http://127.0.0.1:$port/hello.txt"
tap_check "connection 2: 200" eval '[ "$curl_rc" -eq 0 ] && [ "$code" = 200 ]'
tap_check "connection 2: the file's content" cmp "$dir/body" "$dir/www/hello.txt"
tap_check "connection 2: the server saw it" [ "$(requests)" -eq 2 ]
wait_for "$dir/p1.log" '^conn 2:'
tap_diag "$(cat "$dir/p1.log")"
tap_check "log: connection 1 dropped after a request and a response" \
    grep -Eq '^conn 1: request bytes [1-9][0-9]*, response bytes [1-9][0-9]*, dropped$' "$dir/p1.log"
tap_check "log: connection 2 forwarded" \
    grep -Eq '^conn 2: request bytes [1-9][0-9]*, response bytes [1-9][0-9]*, forwarded$' "$dir/p1.log"
kill -TERM "$pid"
tap_check "SIGTERM ends it with status 0" eval 'wait_exit $pid && [ "$rc" -eq 0 ]'

# 2. Every response dropped; exits by itself after two connections.
start_proxy p2 --connect "localhost:$sport" --drop-all-responses \
    --max-connections 2
fetch "http://127.0.0.1:$port/hello.txt"
rc1=$curl_rc
fetch "http://127.0.0.1:$port/hello.txt"
tap_check "--drop-all-responses: both requests get an empty reply" \
    eval '[ "$rc1" -eq 52 ] && [ "$curl_rc" -eq 52 ]'
tap_check "... and both reached the server" [ "$(requests)" -eq 4 ]
tap_check "--max-connections 2: exits by itself, status 0" \
    eval 'wait_exit $pid && [ "$rc" -eq 0 ]'
tap_check "... after logging both as dropped" \
    eval '[ "$(grep -c "dropped$" "$dir/p2.log")" -eq 2 ]'

# 3. Reset the connection mid-response.
start_proxy p3 --connect "127.0.0.1:$sport" --reset-after 10
fetch "http://127.0.0.1:$port/hello.txt"
tap_check "--reset-after 10: curl sees a reset (exit 56)" [ "$curl_rc" -eq 56 ]
wait_for "$dir/p3.log" '^conn 1:'
tap_check "... logged as reset" grep -q '^conn 1: .*, reset$' "$dir/p3.log"
kill -TERM "$pid"
wait_exit "$pid"

# 4. IPv6 loopback for the listening side.
if start_proxy p4 --listen ::1 --connect "127.0.0.1:$sport" 2>/dev/null &&
    grep -q . "$dir/p4.port"; then
	fetch "http://[::1]:$port/hello.txt"
	tap_check "--listen ::1 forwards" \
	    eval '[ "$curl_rc" -eq 0 ] && [ "$code" = 200 ]'
	kill -TERM "$pid"
	wait_exit "$pid"
else
	tap_skip "--listen ::1 forwards" "no IPv6 loopback here"
fi

# 5. Only loopback targets.
refused()
{
	"$proxy" --connect "$1" >"$dir/r.out" 2>"$dir/r.err"
	r=$?
	tap_diag "--connect $1: exit $r, $(cat "$dir/r.err")"
	[ "$r" -ne 0 ] && [ ! -s "$dir/r.out" ] &&
	    grep -q "not a loopback address: refused" "$dir/r.err"
}
tap_check "a non-loopback IPv4 target is refused" refused 192.0.2.1:80
tap_check "a non-loopback IPv6 target is refused" refused '[2001:db8::1]:80'
tap_check "a host name other than localhost is refused" refused example.com:80
tap_check "the server is still up (nothing else killed it)" \
    kill -0 "$server"

tap_done
