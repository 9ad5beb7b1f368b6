#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# The bash completion (completion/p11enroll.bash) against the program:
# the commands `p11enroll --help` lists, its global options, and the
# options each command's own code accepts (the getopt tables of cli/*.c),
# so that neither can drift from the other.

. "$top_srcdir/tests/lib/tap.sh"

command -v bash >/dev/null 2>&1 || tap_skip_all "bash not installed"
tap_plan 4
comp=$top_srcdir/completion/p11enroll.bash
P11ENROLL=$top_builddir/cli/p11enroll

# the words of a `local NAME="..."` list in the completion
comp_list()
{
	sed -n "/local $1=\"/,/\"/p" "$comp" | sed "s/.*local $1=\"//; s/\".*//" |
	    tr -s ' \t\n' '\n' | sed '/^$/d' | sort
}

help=$(LC_ALL=C "$P11ENROLL" --help 2>&1)
cmds=$(printf '%s\n' "$help" | sed -n '/^Commands:/,/^$/p' |
    sed -n 's/^  \([a-z][a-z-]*\) .*/\1/p' | sort)
tap_check "the completion offers exactly the commands of --help" \
    [ "$cmds" = "$(comp_list commands)" ]
[ "$cmds" = "$(comp_list commands)" ] ||
    tap_diag "help: $(echo $cmds) / completion: $(echo $(comp_list commands))"

opts=$(printf '%s\n' "$help" | sed -n '/^Options:/,/^$/p' |
    grep -o -- '--[a-z][a-z-]*' | sort -u)
tap_check "the completion offers exactly the global options of --help" \
    [ "$opts" = "$(comp_list global_opts)" ]

# every long option of the command code is offered somewhere
code_opts=$(cat "$top_srcdir"/cli/*.c | sed -n 's/.*{ "\([a-z][a-z-]*\)", \(required\|no\)_argument.*/--\1/p' |
    sort -u)
missing=
for o in $code_opts; do
	case $o in --admin-code) continue ;; esac # added by admin enroll itself
	grep -q -- "$o\\b" "$comp" || missing="$missing $o"
done
tap_check "every option of cli/*.c is in the completion${missing:+ (missing:$missing)}" \
    [ -z "$missing" ]

# and bash can load it and complete the first word
out=$(bash -c '
_init_completion() { cur=${COMP_WORDS[COMP_CWORD]}; prev=${COMP_WORDS[COMP_CWORD-1]}; words=("${COMP_WORDS[@]}"); cword=$COMP_CWORD; }
_filedir() { :; }
. "$1"
COMP_WORDS=(p11enroll ad); COMP_CWORD=1
_p11enroll
echo "${COMPREPLY[*]}"
COMP_WORDS=(p11enroll admin re); COMP_CWORD=2
_p11enroll
echo "${COMPREPLY[*]}"' sh "$comp" 2>&1)
tap_check "bash completes 'ad' to admin and 'admin re' to reissue revoke" \
    [ "$out" = "admin
reissue revoke" ]
tap_done
