# SPDX-License-Identifier: BSD-3-Clause
# A private p11-kit configuration for a test (sourced after tap.sh).
#
# p11-kit reads per-user module configs from $HOME/.config/pkcs11/, but
# not as root: with P11_KIT_DEBUG=conf, p11-kit 0.24.1 says "skipping
# user config in program running as root", and CI runs as root.  So the
# commands that must see the test's modules run as an unprivileged uid
# (65534, "nobody") with HOME pointing at a private directory holding
#   .config/pkcs11/pkcs11.conf           user-config: only
#   .config/pkcs11/modules/NAME.module   module: /abs/path.so
#                                        critical: no
# "user-config: only" hides the system's modules (softhsm2, opensc,
# p11-kit-trust) from that process, so it sees only what the test put.
#
# Whether user configs are read at all is decided first by the system
# file /etc/pkcs11/pkcs11.conf (pkcs11.conf(5)): its user-config value
# (none, merge, only) is the default, and "none" there turns the user
# files off entirely.  Debian 12 ships no /etc/pkcs11/pkcs11.conf, so the
# built-in default "merge" applies and the user file can then say "only".
# p11kit_env_check reports a system "user-config: none" as a skip reason.
#
#   p11kit_env_check     prints why a test cannot run (and returns 1), or
#                        returns 0: needs root, setpriv and uid 65534
#   p11kit_env_setup     makes P11KIT_HOME (owned by 65534, removed at
#                        exit); the module list starts empty
#   p11kit_env_add_module NAME PATH
#                        copies PATH into P11KIT_HOME (a build directory
#                        may not be readable by 65534) and registers it
#   p11kit_as_user CMD...
#                        runs CMD as 65534:65534 without supplementary
#                        groups, HOME=$P11KIT_HOME, the rest of the
#                        environment kept (SOFTHSM2_CONF, P11FAULT_CONF)

P11KIT_USER_ID=65534

p11kit_env_check()
{
	if [ "$(id -u)" -ne 0 ]; then
		echo "needs root to switch to uid $P11KIT_USER_ID with setpriv"
		return 1
	fi
	if ! command -v setpriv >/dev/null 2>&1; then
		echo "setpriv not installed (Debian package util-linux)"
		return 1
	fi
	if ! getent passwd "$P11KIT_USER_ID" >/dev/null 2>&1; then
		echo "no user with uid $P11KIT_USER_ID"
		return 1
	fi
	if ! command -v p11-kit >/dev/null 2>&1; then
		echo "p11-kit not installed (Debian package p11-kit)"
		return 1
	fi
	if [ -r /etc/pkcs11/pkcs11.conf ] && grep -Eq \
	    '^[[:space:]]*user-config[[:space:]]*:[[:space:]]*none' \
	    /etc/pkcs11/pkcs11.conf; then
		echo "/etc/pkcs11/pkcs11.conf sets user-config: none"
		return 1
	fi
	if ! setpriv --reuid="$P11KIT_USER_ID" --regid="$P11KIT_USER_ID" \
	    --clear-groups true >/dev/null 2>&1; then
		echo "setpriv cannot switch to uid $P11KIT_USER_ID here"
		return 1
	fi
	return 0
}

p11kit_env_setup()
{
	P11KIT_HOME=$(mktemp -d "${TMPDIR:-/tmp}/p11e-p11kit.XXXXXX") ||
	    return 1
	tap_at_exit "rm -rf '$P11KIT_HOME'"
	mkdir -p "$P11KIT_HOME/.config/pkcs11/modules" || return 1
	echo "user-config: only" >"$P11KIT_HOME/.config/pkcs11/pkcs11.conf"
	chown -R "$P11KIT_USER_ID:$P11KIT_USER_ID" "$P11KIT_HOME" &&
	chmod 0700 "$P11KIT_HOME" || return 1
	export P11KIT_HOME
}

p11kit_env_add_module()
{
	cp "$2" "$P11KIT_HOME/$1.so" &&
	chmod 0755 "$P11KIT_HOME/$1.so" &&
	printf 'module: %s\ncritical: no\n' "$P11KIT_HOME/$1.so" \
	    >"$P11KIT_HOME/.config/pkcs11/modules/$1.module" &&
	chown -R "$P11KIT_USER_ID:$P11KIT_USER_ID" "$P11KIT_HOME"
}

p11kit_as_user()
{
	HOME=$P11KIT_HOME XDG_CONFIG_HOME=$P11KIT_HOME/.config \
	    setpriv --reuid="$P11KIT_USER_ID" --regid="$P11KIT_USER_ID" \
	    --clear-groups -- "$@"
}
