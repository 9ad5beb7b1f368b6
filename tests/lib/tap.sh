# SPDX-License-Identifier: BSD-3-Clause
# TAP output for the shell tests (sourced).  Run through automake's
# tap-driver.sh, which counts the "ok"/"not ok" lines against the plan.
#
#   tap_plan N              print "1..N"
#   tap_ok DESC / tap_fail DESC
#   tap_check DESC CMD...   ok if CMD exits 0 (CMD's output goes to stderr)
#   tap_skip DESC REASON    "ok N - DESC # SKIP REASON"
#   tap_skip_all REASON     "1..0 # SKIP REASON" and exit (see below)
#   tap_diag MSG...         "# MSG" (diagnostics, shown in the .log)
#   tap_bail MSG            "Bail out! MSG" and exit 99
#   tap_at_exit CMD         run CMD (a string, eval'd) at exit, newest first
#   tap_tmpdir VAR          make a private temp dir, removed at exit
#   tap_done                exit 0 if every test passed, 1 otherwise
#
# tap_skip_all exits with status 0, not 77: automake's tap-driver.sh
# reports any non-zero exit status as an ERROR, 77 included, and takes
# the skip from the "1..0 # SKIP" plan.  TAP_SKIP_STATUS=77 restores the
# exit-77 convention for a caller without the TAP driver.

tap_n=0
tap_failed=0
tap_cleanups=

tap_plan()
{
	echo "1..$1"
}

tap_ok()
{
	tap_n=$((tap_n + 1))
	echo "ok $tap_n - $*"
}

tap_fail()
{
	tap_n=$((tap_n + 1))
	tap_failed=$((tap_failed + 1))
	echo "not ok $tap_n - $*"
}

tap_check()
{
	tap_desc=$1
	shift
	if "$@" >&2; then
		tap_ok "$tap_desc"
	else
		tap_fail "$tap_desc"
	fi
}

tap_skip()
{
	tap_n=$((tap_n + 1))
	echo "ok $tap_n - $1 # SKIP $2"
}

tap_skip_all()
{
	echo "1..0 # SKIP $*"
	exit "${TAP_SKIP_STATUS:-0}"
}

tap_diag()
{
	printf '%s\n' "$*" | sed 's/^/# /'
}

tap_bail()
{
	echo "Bail out! $*"
	exit 99
}

tap_at_exit()
{
	tap_cleanups="$1
$tap_cleanups"
}

tap_run_cleanups()
{
	tap_status=$?
	# Each command once, newest first; a failing one does not stop the rest.
	tap_list=$tap_cleanups
	tap_cleanups=
	printf '%s\n' "$tap_list" | while IFS= read -r tap_cmd; do
		[ -n "$tap_cmd" ] && eval "$tap_cmd" >/dev/null 2>&1
	done || : # under set -e (the benchmarks) the loop's status must not count
	return $tap_status
}

tap_tmpdir()
{
	tap_d=$(mktemp -d "${TMPDIR:-/tmp}/p11e-test.XXXXXX") ||
	    tap_bail "mktemp failed"
	tap_at_exit "rm -rf '$tap_d'"
	eval "$1=\$tap_d"
}

tap_done()
{
	[ "$tap_failed" -eq 0 ] && exit 0
	exit 1
}

trap 'tap_run_cleanups' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP
