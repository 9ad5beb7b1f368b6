# SPDX-License-Identifier: BSD-3-Clause
# Runs p11enroll and p11enrolld from the build tree in a private user
# environment (sourced after tap.sh).
#
#   agent_env DIR     XDG_RUNTIME_DIR, XDG_STATE_HOME, HOME and
#                     P11ENROLL_CONF under DIR; P11ENROLL_AGENT and
#                     P11ENROLL_REST (the program the agent rests in) set
#   agent_pid         pid of the running agent (from its lock holder), or ""
#   agent_stop        stops the agent of the current environment, if any
#   agent_kill PID    SIGTERM to PID and a bounded wait for it to go
#   conf_check RC PATTERN...
#                     p11enroll config check exits RC and its output
#                     (copied to stderr) matches each PATTERN (grep)
#   P11ENROLL, P11ENROLLD   the programs

P11ENROLL=$top_builddir/cli/p11enroll
P11ENROLLD=$top_builddir/agent/p11enrolld
# absolute, as the CLI requires
case $P11ENROLLD in
/*) ;;
*) P11ENROLLD=$(pwd)/$P11ENROLLD ;;
esac

agent_env()
{
	mkdir -p "$1/run" "$1/state" "$1/home" "$1/etc"
	chmod 0700 "$1/run"
	XDG_RUNTIME_DIR=$1/run
	XDG_STATE_HOME=$1/state
	HOME=$1/home
	P11ENROLL_CONF=$1/etc/p11enroll.conf
	P11ENROLL_AGENT=$P11ENROLLD
	P11ENROLL_REST=${P11ENROLLD%/*}/p11enrolld-rest
	export XDG_RUNTIME_DIR XDG_STATE_HOME HOME P11ENROLL_CONF \
	    P11ENROLL_AGENT P11ENROLL_REST
	# each test stops the agent it started
	tap_at_exit "XDG_RUNTIME_DIR='$1/run'; agent_stop"
}

agent_pid()
{
	ap=$("$P11ENROLL" --no-autostart --json status 2>/dev/null |
	    sed -n 's/^ *"pid": \([0-9]*\),*$/\1/p')
	# status needs the credentials too (a reply over 16 MiB: none)
	[ -n "$ap" ] || ap=$(LC_ALL=C "$P11ENROLL" --no-autostart --version \
	    2>/dev/null | sed -n 's/.*(running, pid \([0-9]*\)).*/\1/p')
	echo "$ap"
}

agent_stop()
{
	p=$(agent_pid)
	[ -n "$p" ] || return 0
	agent_kill "$p"
}

# agent_kill PID: SIGTERM, then a bounded wait (5 s) for it to go
agent_kill()
{
	kill "$1" 2>/dev/null
	ak=0
	while kill -0 "$1" 2>/dev/null && [ $ak -lt 100 ]; do
		sleep 0.05
		ak=$((ak + 1))
	done
}

conf_check()
{
	cc_rc=$1
	shift
	cc_out=$("$P11ENROLL" config check 2>&1)
	cc_got=$?
	printf '%s\n' "$cc_out" >&2
	[ "$cc_got" = "$cc_rc" ] || return 1
	for cc_p in "$@"; do
		printf '%s\n' "$cc_out" | grep -q -- "$cc_p" || return 1
	done
}
