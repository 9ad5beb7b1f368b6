#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# common/crashpoint.c through tests/tools/crashpoint-demo: the process
# dies by SIGKILL exactly at the named point, with no atexit handler run
# and no stdio flushed.

. "$top_srcdir/tests/lib/tap.sh"

demo=$top_builddir/tests/tools/crashpoint-demo
[ -x "$demo" ] || tap_bail "$demo not built"

tap_plan 20
tap_tmpdir dir

# run SPEC: runs the demo with P11ENROLL_CRASHPOINT=SPEC ("-" = unset);
# sets rc, got (the file, lines joined by spaces), out (stdout), err.
run()
{
	rm -f "$dir/file" "$dir/out" "$dir/err"
	# The redirections are made in the child, so the shell's own
	# "Killed" notice goes to the test log, not to the demo's stderr.
	(
		if [ "$1" = - ]; then
			unset P11ENROLL_CRASHPOINT
		else
			P11ENROLL_CRASHPOINT=$1
			export P11ENROLL_CRASHPOINT
		fi
		exec "$demo" "$dir/file" >"$dir/out" 2>"$dir/err"
	)
	rc=$?
	got=$(tr '\n' ' ' <"$dir/file" | sed 's/ $//')
	out=$(cat "$dir/out")
	err=$(cat "$dir/err")
	tap_diag "P11ENROLL_CRASHPOINT=$1: rc=$rc file='$got' stdout='$out'"
	[ -z "$err" ] || tap_diag "stderr: $err"
}

full="a b c l1 l2 l3 atexit"

run -
tap_check "no crash point: whole output" [ "$got" = "$full" ]
tap_check "no crash point: exit 0" [ "$rc" -eq 0 ]
tap_check "no crash point: stdio flushed" [ "$out" = "buffered stdio text" ]

run after-b
tap_check "after-b: file has a and b only" [ "$got" = "a b" ]
tap_check "after-b: killed by signal 9 (137)" [ "$rc" -eq 137 ]
tap_check "after-b: unflushed stdio text is lost" [ -z "$out" ]
tap_check "after-b: no message" [ -z "$err" ]

run after-a
tap_check "after-a: file has a only" eval '[ "$got" = a ] && [ "$rc" -eq 137 ]'

run loop:2
tap_check "loop:2: dies at the second pass" [ "$got" = "a b c l1 l2" ]
tap_check "loop:2: killed by signal 9" [ "$rc" -eq 137 ]

run loop
tap_check "loop: dies at the first pass" \
    eval '[ "$got" = "a b c l1" ] && [ "$rc" -eq 137 ]'

run loop:4
tap_check "loop:4 (never reached): whole output, exit 0" \
    eval '[ "$got" = "$full" ] && [ "$rc" -eq 0 ]'

run "nope,after-c"
tap_check "list: the listed point fires" \
    eval '[ "$got" = "a b c" ] && [ "$rc" -eq 137 ]'

run "loop:3,after-c"
tap_check "list: whichever point comes first fires" \
    eval '[ "$got" = "a b c" ] && [ "$rc" -eq 137 ]'

run nope
tap_check "unknown name: whole output" [ "$got" = "$full" ]
tap_check "unknown name: exit 0" [ "$rc" -eq 0 ]

run after
tap_check "a prefix of a name does not match" \
    eval '[ "$got" = "$full" ] && [ "$rc" -eq 0 ]'

run ""
tap_check "empty variable does nothing" \
    eval '[ "$got" = "$full" ] && [ "$rc" -eq 0 ]'

run "after-a:0,after-b:x"
tap_check "malformed entries are ignored" \
    eval '[ "$got" = "$full" ] && [ "$rc" -eq 0 ]'
tap_check "malformed entries are reported" \
    eval 'printf "%s\n" "$err" | grep -q "malformed entry .after-a:0."'

tap_done
