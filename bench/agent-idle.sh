#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# The agent at rest (issue 7): p11enrolld tracking N credentials
# (default 1,000) that are not due for months, once it rests in
# p11enrolld-rest ([agent] rest-after = 1s here) and, for comparison,
# kept up (rest-after = 0): its resident memory (VmRSS, and the anonymous
# part RssAnon, from /proc) and its wake-ups over SECONDS (default 60:
# context switches and scheduler runs from /proc/PID/status and
# /proc/PID/schedstat); the time a connection takes to get an answer
# from the resting agent (it execs the agent again); then the start-up time with
# M credentials (default 10,000): from exec to the first answer, after
# the journal is read and the first schedule done, without and with the
# schedule index a previous run left.  Prints a Markdown table.
#
#   bench/agent-idle.sh [N [SECONDS [M]]]   (top_builddir=. in a build dir)
#
# Not a test: figures depend on the machine; doc/benchmarks.md records them.
# Targets: RSS <= 4 MiB and no wake-up in 60 s with 1,000; start-up
# <= 100 ms with 10,000.
set -eu
N=${1:-1000}
SECS=${2:-60}
M=${3:-10000}
top_srcdir=${top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
top_builddir=${top_builddir:-.}
export top_srcdir top_builddir
. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/agent.sh"
tool="python3 $top_srcdir/tests/tools/agent-idle.py"

tap_tmpdir T

# env_for DIR [REST-AFTER]: a private agent environment (default: the
# agent never rests)
env_for()
{
	mkdir -p "$1/run" "$1/state/p11enroll" "$1/home"
	chmod 0700 "$1/run"
	printf '[agent]\nrest-after = %s\n' "${2:-0}" >"$1/p11enroll.conf"
	XDG_RUNTIME_DIR=$1/run XDG_STATE_HOME=$1/state HOME=$1/home \
	    P11ENROLL_CONF=$1/p11enroll.conf
	P11ENROLL_REST=${P11ENROLLD%/*}/p11enrolld-rest
	export XDG_RUNTIME_DIR XDG_STATE_HOME HOME P11ENROLL_CONF P11ENROLL_REST
}

# get KEY FILE
get() { sed -n "s/^$1 //p" "$2"; }

echo "| measure | value |"
echo "|---|---|"
env_for "$T/zero"
$tool run "$P11ENROLLD" 1 >"$T/zero.txt"
echo "| RSS with no credential | $(get rss_kib "$T/zero.txt") KiB |"
echo "| start-up with no credential | $(get startup_ms "$T/zero.txt") ms |"

env_for "$T/n" 1s
$tool fill "$XDG_STATE_HOME/p11enroll" "$N"
$tool run "$P11ENROLLD" 1 >"$T/n1.txt"
$tool rest "$P11ENROLLD" "$SECS" >"$T/n2.txt"
wakes() { echo "$(get voluntary_ctxt_switches "$1") / $(get nonvoluntary_ctxt_switches "$1") / $(get schedstat_runs "$1")"; }
echo "| RSS at rest with $N credentials | $(get rss_kib "$T/n2.txt") KiB |"
echo "| of which anonymous | $(get rss_anon_kib "$T/n2.txt") KiB |"
echo "| wake-ups in $SECS s at rest with $N (voluntary / involuntary context switches, scheduler runs) | $(wakes "$T/n2.txt") |"
echo "| a connection to the resting agent with $N: connect to answer (median of 5) | $(get wake_ms "$T/n2.txt") ms |"
printf '[agent]\nrest-after = 0\n' >"$P11ENROLL_CONF"
$tool run "$P11ENROLLD" "$SECS" >"$T/n3.txt"
echo "| RSS kept up (rest-after = 0) with $N | $(get rss_kib "$T/n3.txt") KiB (peak $(get hwm_kib "$T/n3.txt") KiB) |"
echo "| of which anonymous (heap, stacks) | $(get rss_anon_kib "$T/n3.txt") KiB |"
echo "| wake-ups in $SECS s kept up with $N | $(wakes "$T/n3.txt") |"

env_for "$T/m"
$tool fill "$XDG_STATE_HOME/p11enroll" "$M"
$tool run "$P11ENROLLD" 1 >"$T/m1.txt"
for i in 1 2 3 4 5; do
	$tool run "$P11ENROLLD" 0 >"$T/m2.$i.txt"
	get startup_ms "$T/m2.$i.txt"
done | sort -n >"$T/m2.txt"
echo "| start-up with $M, no index (every record read) | $(get startup_ms "$T/m1.txt") ms |"
echo "| start-up with $M, with the index (median of 5) | $(sed -n 3p "$T/m2.txt") ms |"
echo "| RSS with $M | $(get rss_kib "$T/m2.5.txt") KiB |"
