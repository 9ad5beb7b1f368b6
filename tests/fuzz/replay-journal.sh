#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Replays the fuzz_journal corpus (TAP from the replay program).
exec "$top_builddir/tests/fuzz/fuzz-journal" "$top_srcdir/tests/fuzz/corpus/journal"
