#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Replays the fuzz_config corpus (TAP from the replay program).
exec "$top_builddir/tests/fuzz/fuzz-conf" "$top_srcdir/tests/fuzz/corpus/conf"
