#!/bin/sh
# SPDX-License-Identifier: BSD-3-Clause
# The Japanese messages (po/ja.po) under LANG=ja_JP.UTF-8: a user's
# enrollment with the seed's terms — a wrong one-time password refused in
# Japanese by the agent, then the certificate acquired (電子証明書を取得
# しました) with the steps named in Japanese, and the list; the same
# command under LANG=C speaks English.  The catalogues come from the
# build tree (P11ENROLL_LOCALEDIR).  The RA's back office speaks Japanese
# as well.

. "$top_srcdir/tests/lib/tap.sh"
. "$top_srcdir/tests/lib/softhsm.sh"
. "$top_srcdir/tests/lib/agent.sh"
. "$top_srcdir/tests/lib/ra.sh"
. "$top_srcdir/tests/lib/enroll.sh"

for c in softhsm2-util oathtool python3 sqlite3 openssl curl; do
	command -v $c >/dev/null 2>&1 || tap_skip_all "$c not installed"
done
locale -a 2>/dev/null | grep -qix 'ja_JP.utf-\{0,1\}8' ||
    tap_skip_all "no ja_JP.UTF-8 locale (localedef -i ja_JP -c -f UTF-8 ja_JP.UTF-8; ./quickstart deps makes it)"
[ -f "$top_builddir/po/locale/ja/LC_MESSAGES/p11enroll.mo" ] ||
    tap_bail "po/locale not built"

tap_plan 11

tap_tmpdir T
agent_env "$T"
PIN='Pin-Ja-60d1f3'
softhsm_setup p11e-ja "$PIN" >&2 || tap_bail "cannot create a SoftHSM2 token"
TOK=pkcs11:token=p11e-ja
en_ra_start || { cat "$T/ra.log" >&2; tap_bail "p11enroll-ra serve did not start"; }
en_user S0001 || tap_bail "user add failed"
P11ENROLL_LOCALEDIR=$(cd "$top_builddir/po/locale" && pwd)
export P11ENROLL_LOCALEDIR
unset LC_ALL LC_MESSAGES LANGUAGE
LANG=ja_JP.UTF-8
export LANG

# a one-time password of five minutes ago: refused, in Japanese
old=$(oathtool --totp -b -N "now - 300 seconds" "$(cat "$T/S0001.otp")")
printf '%s\n%s\n%s\n' "$PIN" "$PW" "$old" |
    "$P11ENROLL" enroll --invitation "$T/S0001.inv" --token "$TOK" \
    --secrets-stdin >"$T/bad.out" 2>&1
rc=$?
tap_check "a wrong one-time password: refused" [ "$rc" != 0 ]
tap_check "... saying so with the seed's terms" grep -q \
    '契約者ID、利用者ID、利用者暗証番号またはワンタイムパスワードが正しくありません：確認のうえ、次のワンタイムパスワードでやり直してください' \
    "$T/bad.out"
tap_check "... and that the key stays on the token, in Japanese" \
    grep -q "鍵はトークンに残っています：'p11enroll enroll --resume c-" "$T/bad.out"
cred=$(sed -n "s/.*--resume \(c-[0-9a-f]*\)'.*/\1/p" "$T/bad.out" | head -n 1)

printf '%s\n%s\n%s\n' "$PIN" "$PW" "$(en_otp S0001)" |
    "$P11ENROLL" enroll --resume "$cred" --token "$TOK" --secrets-stdin \
    >"$T/ok.out" 2>&1
rc=$?
tap_check "the certificate acquired (電子証明書を取得しました)" sh -c \
    "[ $rc = 0 ] && grep -q '^電子証明書を取得しました：$cred' '$T/ok.out'"
tap_check "... the steps in Japanese (サーバーでの本人確認, 発行, トークンへの書き込み)" sh -c \
    "grep -q 'サーバーでの本人確認' '$T/ok.out' && grep -q '発行' '$T/ok.out' && grep -q 'トークンへの書き込み' '$T/ok.out'"
tap_check "... subject, serial number and validity" sh -c \
    "grep -q '^  シリアル番号  [0-9A-F]' '$T/ok.out' && grep -q '^  有効期間 ' '$T/ok.out'"

"$P11ENROLL" list >"$T/list-ja.out" 2>&1
tap_check "list in Japanese (サービス, 利用者ID, 有効期限)" sh -c \
    "grep -q 'サービス ra\\.\\|サービス 127' '$T/list-ja.out' && grep -q '利用者ID S0001' '$T/list-ja.out' && grep -q '有効期限' '$T/list-ja.out'"
LANG=C "$P11ENROLL" list >"$T/list-c.out" 2>&1
tap_check "the same list under LANG=C: English" sh -c \
    "grep -q 'user S0001' '$T/list-c.out' && grep -q 'valid until' '$T/list-c.out' && ! grep -q '有効期限' '$T/list-c.out'"
LANG=C "$P11ENROLL" list extra >"$T/usage-c.out" 2>&1
LANG=ja_JP.UTF-8 "$P11ENROLL" list extra >"$T/usage-ja.out" 2>&1
tap_check "a usage error in both languages" sh -c \
    "grep -q 'list takes no arguments' '$T/usage-c.out' && grep -q 'list に引数は指定できません' '$T/usage-ja.out'"

# the bank's back office (p11enroll-ra) in Japanese too
"$RA" contract add --name "しんきん物産" >"$T/contract-ja.out" 2>&1
tap_check "p11enroll-ra contract add in Japanese (ご契約先暗証番号, お客様カード)" sh -c \
    "grep -q '^新しいご契約先 しんきん物産' '$T/contract-ja.out' && grep -q '^  ご契約先暗証番号：' '$T/contract-ja.out' && grep -q '^  お客様カード：' '$T/contract-ja.out'"
"$RA" cert revoke 00ZZ >"$T/revoke-ja.out" 2>&1
tap_check "... and its errors (シリアル番号が正しくありません)" sh -c \
    "! '$RA' cert revoke 00ZZ >/dev/null 2>&1 && grep -q 'シリアル番号が正しくありません' '$T/revoke-ja.out'"

tap_done
