#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# The Debian packages (debian/): built with dpkg-buildpackage from a copy
# of the source tree, checked with lintian, installed with dpkg, their
# files checked, an enrollment run with the INSTALLED programs
# (p11enroll-ra serve, p11enroll enroll with the agent it starts, a
# SoftHSM2 token), then purged and checked to leave nothing behind.
#
# Not part of `make check`: it needs root and installs packages on this
# machine.  Run it with `make check-packages` (CI does, .ci/run).  It
# refuses to run when p11enroll or p11enroll-ra is installed already, and
# purges what it installed at exit, whatever happens.
#
#   P11E_PKG_DEBS=DIR   test the .debs in DIR instead of building them
#   P11E_PKG_JOBS=N     parallel build jobs (default 1)

. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/softhsm.sh"

[ "$(id -u)" = 0 ] || tap_skip_all "needs root (dpkg -i, dpkg --purge)"
for c in dpkg-buildpackage dh lintian apt-get softhsm2-util oathtool \
    python3 sqlite3 openssl curl; do
	command -v $c >/dev/null 2>&1 ||
	    tap_skip_all "$c not installed (Debian packages dpkg-dev, debhelper, lintian, softhsm2, oathtool, python3, sqlite3, openssl, curl)"
done
for p in p11enroll p11enroll-ra; do
	case $(dpkg-query -W -f='${Status}' $p 2>/dev/null) in
	*installed* | *unpacked* | *config-files*)
		tap_skip_all "$p is installed already: this test installs and purges its own"
		;;
	esac
done

tap_plan 33
tap_tmpdir T
installed=
etc_before=
[ -e /etc/p11enroll ] && etc_before=yes

# Always purge at exit (registered first: runs after the agent and the RA
# are stopped).
purge()
{
	[ -n "$installed" ] || return 0
	dpkg --purge p11enroll-ra p11enroll >"$T/purge.log" 2>&1
	installed=
}
tap_at_exit purge

# --- build ---
if [ -n "${P11E_PKG_DEBS:-}" ]; then
	B=$P11E_PKG_DEBS
	tap_skip "dpkg-buildpackage builds the packages" "P11E_PKG_DEBS=$B"
else
	B=$T/build
	mkdir -p "$B/src"
	# the tree as it is (committed or not), without build output
	if [ -d "$top_srcdir/.git" ]; then
		(cd "$top_srcdir" &&
		    git ls-files -z -c -o --exclude-standard |
		    xargs -0 sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh |
		    tar --null -T - -cf -) | tar -C "$B/src" -xf -
	else
		(cd "$top_srcdir" && tar --exclude='./_build*' -cf - .) |
		    tar -C "$B/src" -xf -
	fi
	start=$(date +%s)
	(cd "$B/src" && dpkg-checkbuilddeps) >"$T/deps.log" 2>&1 || {
		cat "$T/deps.log" >&2
		tap_bail "build dependencies missing (debian/control)"
	}
	(cd "$B/src" &&
	    DEB_BUILD_OPTIONS="nocheck parallel=${P11E_PKG_JOBS:-1}" \
	    dpkg-buildpackage -us -uc -b) >"$T/build.log" 2>&1
	rc=$?
	[ $rc = 0 ] || tail -n 40 "$T/build.log" >&2
	tap_check "dpkg-buildpackage builds the packages ($(($(date +%s) - start)) s)" \
	    test $rc = 0
fi
deb=$(ls "$B"/p11enroll_*.deb 2>/dev/null | head -n 1)
radeb=$(ls "$B"/p11enroll-ra_*.deb 2>/dev/null | head -n 1)
[ -n "$deb" ] && [ -n "$radeb" ] || tap_bail "no packages in $B"

# --- lintian ---
changes=$(ls "$B"/p11enroll_*.changes 2>/dev/null | head -n 1)
lintian --display-level '>=pedantic' ${changes:-"$deb" "$radeb"} \
    >"$T/lintian.txt" 2>&1
rc=$?
grep -v '^running with root privileges' "$T/lintian.txt" >"$T/lintian.tags"
cat "$T/lintian.tags" >&2
tap_check "lintian: no tag, pedantic included" \
    sh -c "test $rc = 0 && ! test -s '$T/lintian.tags'"

# --- install ---
installed=yes
dpkg -i "$deb" "$radeb" >"$T/install.log" 2>&1 ||
    env DEBIAN_FRONTEND=noninteractive apt-get install -f -y -q \
    --no-install-recommends >>"$T/install.log" 2>&1
rc=$?
cat "$T/install.log" >&2
tap_check "dpkg -i installs both packages" sh -c \
    "test $rc = 0 && dpkg-query -W -f='\${Status}\n' p11enroll p11enroll-ra | grep -c '^install ok installed$' | grep -qx 2"

# --- files ---
tap_check "/usr/bin/p11enroll and /usr/bin/p11enrolld" \
    test -x /usr/bin/p11enroll -a -x /usr/bin/p11enrolld
tap_check "/usr/sbin/p11enroll-ra, in its own package" sh -c \
    "test -x /usr/sbin/p11enroll-ra && dpkg -S /usr/sbin/p11enroll-ra | grep -q '^p11enroll-ra:' && ! dpkg -L p11enroll | grep -q p11enroll-ra"
tap_check "the man pages" sh -c \
    "man -w p11enroll | grep -qx /usr/share/man/man1/p11enroll.1.gz && man -w 8 p11enrolld | grep -qx /usr/share/man/man8/p11enrolld.8.gz && man -w 5 p11enroll.conf | grep -qx /usr/share/man/man5/p11enroll.conf.5.gz && man -w 8 p11enroll-ra | grep -qx /usr/share/man/man8/p11enroll-ra.8.gz"
tap_check "the man pages render without warnings" sh -c \
    "for m in p11enroll p11enrolld p11enroll.conf p11enroll-ra; do LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l \$(man -w \$m) 2>&1 >/dev/null | grep . && exit 1; done; exit 0"
U=/usr/lib/systemd/user
tap_check "the user units in $U, the service running /usr/bin/p11enrolld" \
    sh -c "test -r $U/p11enrolld.socket && grep -qx 'ExecStart=/usr/bin/p11enrolld' $U/p11enrolld.service"
tap_check "the socket is enabled for every user (sockets.target)" sh -c \
    "test \"\$(readlink /etc/systemd/user/sockets.target.wants/p11enrolld.socket)\" = $U/p11enrolld.socket"
tap_check "/etc/p11enroll/conf.d/ exists, from the package" sh -c \
    "test -d /etc/p11enroll/conf.d && dpkg -L p11enroll | grep -qx /etc/p11enroll/conf.d"
EX=/usr/share/doc/p11enroll/examples
tap_check "the example drop-ins are valid configuration" sh -c \
    "mkdir -p '$T/ex/conf.d' && cp $EX/*.conf '$T/ex/conf.d/' && : >'$T/ex/p11enroll.conf' && /usr/bin/p11enroll --no-autostart -c '$T/ex/p11enroll.conf' config check"
tap_check "the example service has url, server-pin and token" sh -c \
    "grep -q '^url = https://' $EX/50-bank.conf && grep -q '^server-pin = sha256//' $EX/50-bank.conf && grep -q '^token = pkcs11:' $EX/50-bank.conf && grep -qx 'autostart = no' $EX/60-cli.conf"

# complete WORDS...: what the installed completion offers for the last
# word (bash-completion's own helpers when installed, else minimal ones)
complete_words()
{
	bash -c '
	if [ -r /usr/share/bash-completion/bash_completion ]; then
		. /usr/share/bash-completion/bash_completion
	else
		_init_completion() {
			words=("${COMP_WORDS[@]}") cword=$COMP_CWORD
			cur=${words[cword]} prev=${words[cword-1]}
		}
		_filedir() { :; }
	fi
	. /usr/share/bash-completion/completions/p11enroll
	COMP_WORDS=("$@")
	COMP_CWORD=$(($# - 1))
	_p11enroll
	printf "%s\n" "${COMPREPLY[@]}"' complete "$@"
}
# offers WORD WORDS...: the completion of WORDS offers WORD
offers()
{
	o_want=$1
	shift
	complete_words "$@" | grep -qx -- "$o_want"
}
tap_check "bash completion: the commands" offers enroll p11enroll en
tap_check "bash completion: enroll's options after global ones" \
    offers --invitation p11enroll --json enroll --inv
tap_check "bash completion: key types" \
    offers ec-p384 p11enroll enroll --key-type ec
tap_check "bash completion: token verbs" offers keygen p11enroll token ''
tap_check "bash completion: a verb's options" \
    offers --type p11enroll token keygen pkcs11: --t
# --- an enrollment with the installed programs ---
P11ENROLL=/usr/bin/p11enroll
RA=/usr/sbin/p11enroll-ra
. "$top_srcdir/tests/lib/agent.sh"
. "$top_srcdir/tests/lib/ra.sh"
. "$top_srcdir/tests/lib/enroll.sh"
P11ENROLL=/usr/bin/p11enroll
P11ENROLLD=/usr/bin/p11enrolld
agent_env "$T/user"
# the CLI starts the agent it was built with (/usr/bin/p11enrolld)
unset P11ENROLL_AGENT
PIN='Pin-Package-4e2a91'
softhsm_setup p11e-pkg "$PIN" >&2 || tap_bail "cannot create a SoftHSM2 token"
tap_check "p11enroll --version" sh -c \
    "$P11ENROLL --no-autostart --version | grep -q '^p11enroll [0-9]'"
en_ra_start >&2
tap_check "p11enroll-ra init, contract add and serve (port $PORT)" \
    test -n "$C"
tap_check "p11enroll-ra user add and otp assign" en_user P0001
en_enroll P0001 pkcs11:token=p11e-pkg >"$T/out" 2>&1
rc=$?
cat "$T/out" >&2
tap_check "p11enroll enroll --invitation succeeds" test $rc = 0
apid=$(agent_pid)
tap_check "the agent that ran is /usr/bin/p11enrolld" \
    test "$(readlink "/proc/${apid:-0}/exe")" = /usr/bin/p11enrolld
tap_check "one private key and one certificate on the token" \
    test "$(en_count pkcs11:token=p11e-pkg private-key) $(en_count pkcs11:token=p11e-pkg certificate)" = "1 1"
tap_check "the RA issued exactly one certificate to P0001" \
    test "$(en_ra_serial P0001 | wc -l)" = 1
tap_check "p11enroll list says INSTALLED" sh -c \
    "$P11ENROLL list | grep -q INSTALLED"
tap_check "without P11ENROLL_CONF, the configuration is /etc/p11enroll's" \
    sh -c "env -u P11ENROLL_CONF $P11ENROLL --no-autostart config check | grep -q '/etc/p11enroll/p11enroll.conf'"
agent_stop
kill "$RA_PID" 2>/dev/null
wait "$RA_PID" 2>/dev/null

# --- remove, purge ---
dpkg -L p11enroll p11enroll-ra 2>/dev/null | sort -u >"$T/files"
dpkg -r p11enroll-ra p11enroll >"$T/remove.log" 2>&1
rc=$?
cat "$T/remove.log" >&2
tap_check "dpkg -r removes both" test $rc = 0
tap_check "the programs are gone after remove" sh -c \
    "! test -e /usr/bin/p11enroll && ! test -e /usr/bin/p11enrolld && ! test -e /usr/sbin/p11enroll-ra"
dpkg --purge p11enroll-ra p11enroll >"$T/purge.log" 2>&1
rc=$?
cat "$T/purge.log" >&2
installed=
tap_check "dpkg --purge purges both" sh -c \
    "test $rc = 0 && ! dpkg-query -W p11enroll p11enroll-ra 2>/dev/null | grep -q ."
left=$(while read -r f; do
	case $f in
	/ | /. | /etc | /usr | /usr/bin | /usr/sbin | /usr/lib | /usr/libexec | \
	    /usr/share | \
	    /usr/share/doc | /usr/share/man | /usr/share/man/man? | \
	    /usr/lib/systemd | /usr/lib/systemd/user | \
	    /usr/share/bash-completion | /usr/share/bash-completion/completions | \
	    /usr/share/locale | /usr/share/locale/?? | \
	    /usr/share/locale/??/LC_MESSAGES)
		continue # shared with other packages
		;;
	esac
	[ -e "$f" ] && echo "$f"
done <"$T/files")
[ -z "$left" ] || tap_diag "left behind: $left"
tap_check "no file or directory of the packages is left" test -z "$left"
tap_check "no enablement symlink is left" sh -c \
    "! test -e /etc/systemd/user/sockets.target.wants/p11enrolld.socket && ! test -L /etc/systemd/user/sockets.target.wants/p11enrolld.socket"
if [ -n "$etc_before" ]; then
	tap_skip "no /etc/p11enroll is left" "it was there before the test"
else
	tap_check "no /etc/p11enroll is left" test ! -e /etc/p11enroll
fi
tap_check "deb-systemd-helper keeps no state of the units" sh -c \
    "! find /var/lib/systemd/deb-systemd-user-helper-enabled -name '*p11enrolld*' 2>/dev/null | grep -q ."

tap_done
