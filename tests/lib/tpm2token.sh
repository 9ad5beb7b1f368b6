# SPDX-License-Identifier: BSD-3-Clause
# A fresh tpm2-pkcs11 token on a software TPM per test (sourced after
# tests/lib/tap.sh).  Recipe and pitfalls: research/tpm2-token.md.
#
#   tpm2token_check         prints why the fixture cannot run here (and
#                           returns 1), or returns 0
#   tpm2token_module        prints the tpm2-pkcs11 module path (or fails)
#   tpm2token_setup [LABEL [PIN [SO_PIN]]]
#       starts, in a private directory (TPM2TOKEN_DIR), all on unix
#       sockets there:
#         swtpm              the TPM, with its state in TPM2TOKEN_DIR/state
#         dbus-daemon        a private bus (TPM2TOKEN_DIR/bus.sock) with
#                            its own minimal configuration: no service
#                            activation, nothing from the system
#         tpm2-abrmd --session  the resource manager on that bus; without
#                            it swtpm runs out of object slots (3) after
#                            a key or two
#       then makes a tpm2-pkcs11 store with `tpm2_ptool init` and one
#       token with `tpm2_ptool addtoken` (which, unlike C_InitToken, also
#       enables the RSA-PSS mechanisms).  The TPM's dictionary-attack
#       lockout is turned off (see below).  Exports:
#         TPM2TOKEN_DIR      the private directory (removed at exit)
#         TPM2TOKEN_MODULE   the module path (libtpm2_pkcs11.so)
#         TPM2TOKEN_LABEL    the token label (default "p11e-tpm2")
#         TPM2TOKEN_PIN      the user PIN (default "1234")
#         TPM2TOKEN_SO_PIN   the SO PIN (default "12345678")
#         TPM2TOKEN_SERIAL   the token serial number (C_GetTokenInfo).
#                            tpm2-pkcs11 1.9 reports 0000000000000000
#                            for every token, with manufacturer "IBM"
#                            and model "SW   TPM" on swtpm: serial,
#                            manufacturer and model do not tell two of
#                            its tokens apart, the label does
#         TPM2TOKEN_SLOT     the module's slot ID of the token (decimal)
#       and what the module and tpm2_ptool read from the environment:
#         TPM2_PKCS11_STORE=$TPM2TOKEN_DIR/store
#         TPM2_PKCS11_TCTI=tabrmd:bus_type=session
#         TPM2TOOLS_TCTI=tabrmd:bus_type=session
#         DBUS_SESSION_BUS_ADDRESS=unix:path=$TPM2TOKEN_DIR/bus.sock
#         TPM2_PKCS11_BACKEND=esysdb   (overrides a test environment's
#                                       "none", see below)
#         TPM2_PKCS11_LOG_LEVEL=0      (errors only)
#       Returns non-zero (with a message on stderr) on failure; the
#       caller decides whether that is a skip or a failure.
#   tpm2token_teardown
#       stops the daemons (TERM, then KILL after 5 s), reaps them and
#       removes TPM2TOKEN_DIR.  Runs at exit anyway; idempotent.
#
# The daemons are children of the test shell and are reaped by it: the
# exit trap is extended to call tpm2token_teardown in the main shell
# (tap.sh runs its cleanups in a subshell, which cannot reap, and PID 1
# of a container often does not reap orphans either).
#
# Debian's libtpm2-pkcs11-1 registers the module with p11-kit
# system-wide (/usr/share/p11-kit/modules/tpm2_pkcs11.module), so with
# the variables above exported p11-kit-proxy.so and `p11-kit list-modules`
# see this token too.  Every other process that loads p11-kit's modules
# loads it as well: without a TPM it probes /dev/tpmrm0, /dev/tpm0,
# 127.0.0.1:2321 and tpm2-abrmd on the *system* bus (which can block for
# D-Bus's 25 s activation timeout on a host where tpm2-abrmd.service is
# activatable but has no TPM), prints a dozen TCTI errors and creates
# $HOME/.tpm2_pkcs11.  TPM2_PKCS11_BACKEND=none (any value other than
# esysdb or fapi) makes its C_Initialize fail at once, silently, before
# any of that; p11-kit then skips it ("critical: no").  Tests that do not
# use this fixture should run with TPM2_PKCS11_BACKEND=none.
#
# The PINs are test values: they appear in argv here, which only tests may.

tpm2token_pids=
TPM2TOKEN_DIR=

tpm2token_abrmd()
{
	for t2_p in "$(command -v tpm2-abrmd 2>/dev/null)" \
	    /usr/sbin/tpm2-abrmd /sbin/tpm2-abrmd; do
		[ -n "$t2_p" ] && [ -x "$t2_p" ] && echo "$t2_p" && return 0
	done
	return 1
}

tpm2token_module()
{
	if [ -n "${TPM2_PKCS11_MODULE-}" ]; then
		[ -r "$TPM2_PKCS11_MODULE" ] && echo "$TPM2_PKCS11_MODULE" &&
		    return 0
		echo "TPM2_PKCS11_MODULE=$TPM2_PKCS11_MODULE is not readable" >&2
		return 1
	fi
	t2_multiarch=$(gcc -print-multiarch 2>/dev/null ||
	    dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null)
	# p11-kit's registration names the module relative to its module
	# directory; what p11-kit loads wins.
	t2_dir=$(pkg-config --variable=p11_module_path p11-kit-1 2>/dev/null)
	t2_reg=
	for t2_f in /usr/share/p11-kit/modules/tpm2_pkcs11.module \
	    /etc/pkcs11/modules/tpm2_pkcs11.module; do
		[ -r "$t2_f" ] || continue
		t2_reg=$(sed -n 's/^[[:space:]]*module:[[:space:]]*//p' "$t2_f" |
		    head -n 1)
	done
	case $t2_reg in
	/*) ;;
	?*) t2_reg=${t2_dir:+$t2_dir/$t2_reg} ;;
	esac
	for t2_m in "$t2_reg" \
	    ${t2_dir:+$t2_dir/libtpm2_pkcs11.so} \
	    ${t2_multiarch:+/usr/lib/$t2_multiarch/pkcs11/libtpm2_pkcs11.so} \
	    ${t2_multiarch:+/usr/lib/$t2_multiarch/libtpm2_pkcs11.so.1} \
	    /usr/lib64/pkcs11/libtpm2_pkcs11.so \
	    /usr/lib/pkcs11/libtpm2_pkcs11.so \
	    /usr/local/lib/libtpm2_pkcs11.so; do
		[ -n "$t2_m" ] && [ -r "$t2_m" ] && echo "$t2_m" && return 0
	done
	echo "tpm2-pkcs11 module not found (Debian package libtpm2-pkcs11-1)" >&2
	return 1
}

tpm2token_check()
{
	for t2_c in swtpm:swtpm dbus-daemon:dbus-daemon \
	    tpm2_ptool:libtpm2-pkcs11-tools tpm2_getcap:tpm2-tools \
	    pkcs11-tool:opensc; do
		command -v "${t2_c%%:*}" >/dev/null 2>&1 || {
			echo "${t2_c%%:*} not installed (Debian package ${t2_c#*:})"
			return 1
		}
	done
	tpm2token_abrmd >/dev/null ||
	    { echo "tpm2-abrmd not installed (Debian package tpm2-abrmd)"; return 1; }
	t2_lib=$(ls /usr/lib/*/libtss2-tcti-tabrmd.so.0 \
	    /usr/lib*/libtss2-tcti-tabrmd.so.0 2>/dev/null | head -n 1)
	[ -n "$t2_lib" ] || {
		echo "libtss2-tcti-tabrmd.so.0 not found (Debian package libtss2-tcti-tabrmd0)"
		return 1
	}
	t2_m=$(tpm2token_module 2>&1) || { echo "$t2_m"; return 1; }
	return 0
}

# Is process $1 gone (or a zombie, which only its parent can reap)?
tpm2token_gone()
{
	[ -r "/proc/$1/stat" ] || { kill -0 "$1" 2>/dev/null || return 0; return 1; }
	t2_st=$(sed 's/^.*) \(.\).*/\1/' "/proc/$1/stat" 2>/dev/null) ||
	    return 0
	[ -z "$t2_st" ] || [ "$t2_st" = Z ] || [ "$t2_st" = X ]
}

tpm2token_teardown()
{
	t2_status=$?
	for t2_pid in $tpm2token_pids; do
		kill "$t2_pid" 2>/dev/null
	done
	for t2_pid in $tpm2token_pids; do
		t2_i=0
		while ! tpm2token_gone "$t2_pid" && [ "$t2_i" -lt 100 ]; do
			sleep 0.05
			t2_i=$((t2_i + 1))
		done
		tpm2token_gone "$t2_pid" || kill -9 "$t2_pid" 2>/dev/null
		wait "$t2_pid" 2>/dev/null
	done
	tpm2token_pids=
	[ -n "$TPM2TOKEN_DIR" ] && rm -rf "$TPM2TOKEN_DIR"
	TPM2TOKEN_DIR=
	return $t2_status
}

# tpm2token_wait_for WHAT PID CMD...: run CMD until it succeeds, at most
# about 10 s, failing early if PID (the daemon being waited for) died.
tpm2token_wait_for()
{
	t2_what=$1
	t2_wpid=$2
	shift 2
	t2_i=0
	until "$@" >/dev/null 2>&1; do
		if tpm2token_gone "$t2_wpid"; then
			echo "tpm2token_setup: $t2_what exited" >&2
			return 1
		fi
		t2_i=$((t2_i + 1))
		if [ "$t2_i" -ge 200 ]; then
			echo "tpm2token_setup: $t2_what not ready after 10 s" >&2
			return 1
		fi
		sleep 0.05
	done
}

tpm2token_fail()
{
	echo "tpm2token_setup: $*" >&2
	for t2_log in swtpm.log dbus.log abrmd.log da.log ptool.log; do
		[ -s "$TPM2TOKEN_DIR/$t2_log" ] || continue
		echo "--- $t2_log" >&2
		tail -n 20 "$TPM2TOKEN_DIR/$t2_log" >&2
	done
	return 1
}

tpm2token_setup()
{
	TPM2TOKEN_LABEL=${1:-p11e-tpm2}
	TPM2TOKEN_PIN=${2:-1234}
	TPM2TOKEN_SO_PIN=${3:-12345678}
	t2_why=$(tpm2token_check) || { echo "$t2_why" >&2; return 1; }
	TPM2TOKEN_MODULE=$(tpm2token_module) || return 1
	t2_abrmd=$(tpm2token_abrmd) || return 1
	# Unix socket paths must fit in sun_path (108 bytes).
	t2_tmp=${TMPDIR:-/tmp}
	[ "${#t2_tmp}" -le 60 ] || t2_tmp=/tmp
	TPM2TOKEN_DIR=$(mktemp -d "$t2_tmp/p11e-tpm2.XXXXXX") || return 1
	# The teardown reaps the daemons, so it runs in the main shell, before
	# tap.sh's cleanups; tap_at_exit covers a replaced exit trap.
	if command -v tap_run_cleanups >/dev/null 2>&1; then
		trap 'tpm2token_teardown; tap_run_cleanups' EXIT
		tap_at_exit tpm2token_teardown
	else
		trap 'tpm2token_teardown' EXIT
	fi
	t2_d=$TPM2TOKEN_DIR
	mkdir "$t2_d/state" "$t2_d/store" "$t2_d/tmp" || return 1

	# The TPM.  startup-clear: swtpm sends TPM2_Startup itself (without
	# it every command fails with TPM_RC_INITIALIZE).
	swtpm socket --tpm2 \
	    --server "type=unixio,path=$t2_d/swtpm.sock" \
	    --ctrl "type=unixio,path=$t2_d/swtpm.sock.ctrl" \
	    --tpmstate "dir=$t2_d/state" \
	    --flags not-need-init,startup-clear \
	    --log "file=$t2_d/swtpm.log" \
	    </dev/null >>"$t2_d/swtpm.log" 2>&1 &
	t2_swtpm=$!
	tpm2token_pids="$t2_swtpm"
	tpm2token_wait_for swtpm "$t2_swtpm" test -S "$t2_d/swtpm.sock" ||
	    { tpm2token_fail "swtpm did not start"; return 1; }

	# A private bus: no service directories, so nothing is activated.
	cat >"$t2_d/bus.conf" <<T2EOF || return 1
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=$t2_d/bus.sock</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
T2EOF
	dbus-daemon --config-file="$t2_d/bus.conf" --nofork --nopidfile \
	    --nosyslog </dev/null >"$t2_d/dbus.log" 2>&1 &
	t2_dbus=$!
	tpm2token_pids="$t2_dbus $tpm2token_pids"
	tpm2token_wait_for dbus-daemon "$t2_dbus" test -S "$t2_d/bus.sock" ||
	    { tpm2token_fail "dbus-daemon did not start"; return 1; }

	DBUS_SESSION_BUS_ADDRESS=unix:path=$t2_d/bus.sock
	TPM2_PKCS11_TCTI=tabrmd:bus_type=session
	TPM2TOOLS_TCTI=tabrmd:bus_type=session
	TPM2_PKCS11_STORE=$t2_d/store
	TPM2_PKCS11_BACKEND=esysdb
	TPM2_PKCS11_LOG_LEVEL=0
	export DBUS_SESSION_BUS_ADDRESS TPM2_PKCS11_TCTI TPM2TOOLS_TCTI \
	    TPM2_PKCS11_STORE TPM2_PKCS11_BACKEND TPM2_PKCS11_LOG_LEVEL

	# The resource manager.  tpm2-pkcs11 flushes objects only at
	# C_Finalize; 100 transients (the maximum) per connection is about
	# 50 EC keys per C_Initialize.
	t2_root=
	[ "$(id -u)" -eq 0 ] && t2_root=--allow-root
	"$t2_abrmd" --session $t2_root --flush-all --max-transients=100 \
	    --tcti="swtpm:path=$t2_d/swtpm.sock" \
	    </dev/null >"$t2_d/abrmd.log" 2>&1 &
	t2_rm=$!
	tpm2token_pids="$t2_rm $tpm2token_pids"
	tpm2token_wait_for tpm2-abrmd "$t2_rm" tpm2_getcap properties-fixed ||
	    { tpm2token_fail "tpm2-abrmd did not start"; return 1; }

	# Dictionary-attack protection off (recovery time 0): with swtpm's
	# defaults three wrong PINs put the whole TPM in lockout for 1000 s,
	# and then every login, right PIN included, gets CKR_PIN_LOCKED.  A
	# test of the lockout turns it back on:
	#   tpm2_dictionarylockout -s -n 3 -t 1000 -l 1000
	tpm2_dictionarylockout --setup-parameters --recovery-time=0 \
	    --lockout-recovery-time=0 --clear-lockout \
	    >"$t2_d/da.log" 2>&1 ||
	    { tpm2token_fail "tpm2_dictionarylockout failed"; return 1; }

	# The store and the token.  tpm2_ptool writes temporary files to
	# TMPDIR; keep them in the private directory.
	TMPDIR=$t2_d/tmp tpm2_ptool init >"$t2_d/ptool.log" 2>&1 ||
	    { tpm2token_fail "tpm2_ptool init failed"; return 1; }
	TMPDIR=$t2_d/tmp tpm2_ptool addtoken --pid=1 \
	    --label="$TPM2TOKEN_LABEL" --userpin="$TPM2TOKEN_PIN" \
	    --sopin="$TPM2TOKEN_SO_PIN" >>"$t2_d/ptool.log" 2>&1 ||
	    { tpm2token_fail "tpm2_ptool addtoken failed"; return 1; }

	# Serial and slot as the module reports them (C_GetTokenInfo).
	t2_out=$(pkcs11-tool --module "$TPM2TOKEN_MODULE" -L 2>"$t2_d/list.err") ||
	    { tpm2token_fail "pkcs11-tool -L failed: $(cat "$t2_d/list.err")"; return 1; }
	t2_line=$(printf '%s\n' "$t2_out" | awk -v l="$TPM2TOKEN_LABEL" '
	    function val() { v = $0; sub(/^[^:]*:[ \t]*/, "", v)
	        sub(/[ \t]+$/, "", v); return v }
	    /^Slot [0-9]/ { slot = $3; gsub(/[():]/, "", slot)
	        label = ""; serial = "" }
	    /^[ \t]*token label[ \t]*:/ { label = val() }
	    /^[ \t]*serial num[ \t]*:/ { serial = val() }
	    label == l && serial != "" { print slot, serial; exit }')
	TPM2TOKEN_SLOT=${t2_line%% *}
	TPM2TOKEN_SERIAL=${t2_line#* }
	if [ -z "$t2_line" ] || [ -z "$TPM2TOKEN_SERIAL" ]; then
		printf '%s\n' "$t2_out" >&2
		tpm2token_fail "cannot read the slot/serial of the new token"
		return 1
	fi
	TPM2TOKEN_SLOT=$((TPM2TOKEN_SLOT))
	export TPM2TOKEN_DIR TPM2TOKEN_MODULE TPM2TOKEN_LABEL TPM2TOKEN_PIN \
	    TPM2TOKEN_SO_PIN TPM2TOKEN_SERIAL TPM2TOKEN_SLOT
}
