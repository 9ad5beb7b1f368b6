#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Replays the fuzz_ipc_frame corpus (TAP from the replay program).
exec "$top_builddir/tests/fuzz/fuzz-ipc" "$top_srcdir/tests/fuzz/corpus/ipc"
