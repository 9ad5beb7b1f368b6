#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# Replays the fuzz_pkcs7_certs_only corpus (TAP from the replay program).
exec "$top_builddir/tests/fuzz/fuzz-est" "$top_srcdir/tests/fuzz/corpus/est"
