# SPDX-License-Identifier: BSD-3-Clause
# A fresh SoftHSM2 token per test (sourced after tests/lib/tap.sh).
#
#   softhsm_module          prints the SoftHSM2 module path (or fails)
#   softhsm_setup [LABEL [PIN [SO_PIN]]]
#       makes a private directory with its own softhsm2.conf and token
#       directory, exports SOFTHSM2_CONF and initialises one token in the
#       first free slot.  Exports:
#         SOFTHSM_DIR      the private directory (removed at exit)
#         SOFTHSM_MODULE   the module path
#         SOFTHSM_LABEL    the token label (default "p11e-test")
#         SOFTHSM_PIN      the user PIN (default "1234")
#         SOFTHSM_SO_PIN   the SO PIN (default "12345678")
#         SOFTHSM_SERIAL   the token serial number (16 hex digits)
#         SOFTHSM_SLOT     the slot ID the token was reassigned to
#       Returns non-zero (with a message on stderr) on failure; the
#       caller decides whether that is a skip or a failure.
#
# Debian's softhsm2 package registers the module with p11-kit system-wide
# (/usr/share/p11-kit/modules/softhsm2.module), so with SOFTHSM2_CONF
# exported p11-kit-proxy.so and `p11-kit list-modules` see this token too.
# The PINs are test values: they appear in argv here, which only tests may.

softhsm_module()
{
	if [ -n "${SOFTHSM2_MODULE-}" ]; then
		[ -r "$SOFTHSM2_MODULE" ] && echo "$SOFTHSM2_MODULE" && return 0
		echo "SOFTHSM2_MODULE=$SOFTHSM2_MODULE is not readable" >&2
		return 1
	fi
	# What p11-kit has registered wins: it is what the proxy loads.
	sh_multiarch=$(gcc -print-multiarch 2>/dev/null ||
	    dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null)
	sh_reg=
	for sh_f in /usr/share/p11-kit/modules/softhsm2.module \
	    /etc/pkcs11/modules/softhsm2.module; do
		[ -r "$sh_f" ] || continue
		sh_reg=$(sed -n 's/^[[:space:]]*module:[[:space:]]*//p' "$sh_f" |
		    head -n 1)
	done
	for sh_m in "$sh_reg" \
	    /usr/lib/softhsm/libsofthsm2.so \
	    ${sh_multiarch:+/usr/lib/$sh_multiarch/softhsm/libsofthsm2.so} \
	    /usr/lib64/pkcs11/libsofthsm2.so \
	    /usr/lib/pkcs11/libsofthsm2.so \
	    /usr/local/lib/softhsm/libsofthsm2.so; do
		[ -n "$sh_m" ] && [ -r "$sh_m" ] && echo "$sh_m" && return 0
	done
	echo "SoftHSM2 module not found (Debian package softhsm2)" >&2
	return 1
}

softhsm_setup()
{
	SOFTHSM_LABEL=${1:-p11e-test}
	SOFTHSM_PIN=${2:-1234}
	SOFTHSM_SO_PIN=${3:-12345678}
	command -v softhsm2-util >/dev/null 2>&1 || {
		echo "softhsm2-util not found (Debian package softhsm2)" >&2
		return 1
	}
	SOFTHSM_MODULE=$(softhsm_module) || return 1
	SOFTHSM_DIR=$(mktemp -d "${TMPDIR:-/tmp}/p11e-softhsm.XXXXXX") ||
	    return 1
	# Registered with tap.sh's exit hook when it is loaded.
	if command -v tap_at_exit >/dev/null 2>&1; then
		tap_at_exit "rm -rf '$SOFTHSM_DIR'"
	else
		trap 'rm -rf "$SOFTHSM_DIR"' EXIT
	fi
	mkdir "$SOFTHSM_DIR/tokens" || return 1
	cat >"$SOFTHSM_DIR/softhsm2.conf" <<SHEOF || return 1
directories.tokendir = $SOFTHSM_DIR/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
SHEOF
	SOFTHSM2_CONF=$SOFTHSM_DIR/softhsm2.conf
	export SOFTHSM2_CONF
	softhsm2-util --init-token --free --label "$SOFTHSM_LABEL" \
	    --pin "$SOFTHSM_PIN" --so-pin "$SOFTHSM_SO_PIN" \
	    >"$SOFTHSM_DIR/init.log" 2>&1 || {
		cat "$SOFTHSM_DIR/init.log" >&2
		return 1
	}
	SOFTHSM_SLOT=$(sed -n 's/.*reassigned to slot \([0-9]*\).*/\1/p' \
	    "$SOFTHSM_DIR/init.log")
	# --show-slots lists the slot, then its token's fields; take the
	# serial of the token carrying our label.
	SOFTHSM_SERIAL=$(softhsm2-util --show-slots 2>/dev/null | awk -v l="$SOFTHSM_LABEL" '
	    /^Slot [0-9]/ { serial = ""; label = "" }
	    /Label:/ { sub(/^[^:]*:[ \t]*/, ""); sub(/[ \t]+$/, ""); label = $0 }
	    /Serial number:/ { sub(/^[^:]*:[ \t]*/, ""); serial = $0 }
	    label == l && serial != "" { print serial; exit }')
	if [ -z "$SOFTHSM_SLOT" ] || [ -z "$SOFTHSM_SERIAL" ]; then
		echo "softhsm_setup: cannot read slot/serial of the new token" >&2
		cat "$SOFTHSM_DIR/init.log" >&2
		return 1
	fi
	export SOFTHSM_DIR SOFTHSM_MODULE SOFTHSM_LABEL SOFTHSM_PIN \
	    SOFTHSM_SO_PIN SOFTHSM_SERIAL SOFTHSM_SLOT
}
