# SPDX-License-Identifier: BSD-3-Clause
# Helpers for the p11enroll-ra tests (sourced after tests/lib/tap.sh).
#
#   RA                 the p11enroll-ra binary of the build
#   ra_dump DB         a full SQL dump of the database (sqlite3 CLI)
#   ra_json_get KEY    reads JSON on stdin, prints member KEY (python3)

RA=${RA:-$top_builddir/server/p11enroll-ra}

ra_dump()
{
	sqlite3 "$1" .dump
}

ra_json_get()
{
	python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}

# ra_unchanged DESC DIR CMD...: CMD fails and the database is unchanged.
ra_unchanged()
{
	ru_desc=$1
	ru_dir=$2
	shift 2
	ru_before=$(ra_dump "$ru_dir/ra.db")
	if "$@" >"$ru_dir/../out" 2>&1; then
		cat "$ru_dir/../out" >&2
		tap_fail "$ru_desc (succeeded)"
		return
	fi
	cat "$ru_dir/../out" >&2
	if [ "$(ra_dump "$ru_dir/ra.db")" != "$ru_before" ]; then
		tap_fail "$ru_desc (database changed)"
		return
	fi
	tap_ok "$ru_desc"
}
