#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# `./quickstart demo` (tests/lib/seed-scenario.sh) under LANG=ja_JP.UTF-8:
# the whole scenario runs to its end, and the programs speak the seed's
# Japanese — the administrator's login, user list and reissue (お客様カードの … 数字を入力して
# ください, 取得可能期間), the user's acquisition (電子証明書を取得しました,
# 鍵の生成) and the list (有効期限) — with the catalogues of the build tree.

. "$top_srcdir/tests/lib/tap.sh"

for c in softhsm2-util script oathtool python3 curl openssl sqlite3 setsid; do
	command -v $c >/dev/null 2>&1 || tap_skip_all "$c not installed"
done
NGINX=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || tap_skip_all "nginx not installed (Debian package nginx-light)"
engine=$(openssl version -e 2>/dev/null | sed -n 's/^ENGINESDIR: "\(.*\)"/\1/p')/pkcs11.so
[ -r "$engine" ] ||
    tap_skip_all "libp11's engine not installed (Debian package libengine-pkcs11-openssl)"
locale -a 2>/dev/null | grep -qix 'ja_JP.utf-\{0,1\}8' ||
    tap_skip_all "no ja_JP.UTF-8 locale (./quickstart deps makes it)"

tap_plan 6
tap_tmpdir W
P11ENROLL_LOCALEDIR=$(cd "$top_builddir/po/locale" && pwd)
export P11ENROLL_LOCALEDIR
unset LC_ALL LC_MESSAGES LANGUAGE
LANG=ja_JP.UTF-8 sh "$top_srcdir/tests/lib/seed-scenario.sh" "$top_builddir" \
    "$W" >"$W/out" 2>&1
rc=$?
cat "$W/out" >&2
tap_check "the demo runs to its end under LANG=ja_JP.UTF-8 (exit 0)" [ $rc = 0 ]
tap_check "the administrator's user list and reissue: 利用者ID, 発行番号, 再発行" sh -c \
    "grep -q '利用者ID *利用者名 *発行番号 *ステータス' '$W/out' && grep -q 'S0001 の電子証明書を再発行します' '$W/out'"
tap_check "the administrator's login asks for the customer card's numbers in Japanese only" sh -c \
    "grep -q 'お客様カードの .* と .* の数字を入力してください。' '$W/out' && ! grep -q 'Enter the numbers of' '$W/out'"
tap_check "the reissue: 取得可能期間 and what to tell the user" sh -c \
    "grep -q '取得可能期間は .* までです。利用者に次の内容を通知してください' '$W/out'"
tap_check "the user's acquisition: 電子証明書を取得しました, with the steps named in Japanese" sh -c \
    "grep -q '電子証明書を取得しました：' '$W/out' && grep -q '鍵の生成' '$W/out' && grep -q 'トークンへの書き込み' '$W/out'"
tap_check "the list: 有効期限 and 利用者ID" sh -c \
    "grep -q '有効期限' '$W/out' && grep -q '利用者ID S0001' '$W/out'"
tap_done
