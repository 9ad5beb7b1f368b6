# SPDX-License-Identifier: BSD-3-Clause
# The token commands against one real token (sourced after tap.sh,
# agent.sh and pki.sh): the same suite runs on SoftHSM2 as root, on
# SoftHSM2 behind p11fault as uid 65534, and on tpm2-pkcs11.
#
# The caller sets, then calls tokensuite_run:
#   TS_URI        a URI naming exactly the token under test
#   TS_LABEL      its label
#   TS_PIN        its user PIN
#   TS_KEYTYPES   the key types it says it can generate ("ec-p256 ...")
#   TS_KEYGEN     those the suite generates (default TS_KEYTYPES) ...
#   TS_KEYGEN_SKIP  ... and why the others are left out
#   TS_UNSUPPORTED  a key type it cannot generate ("" when it has all)
#   TS_OTHER_URI  the full URI of a second token ...
#   TS_AMBIG_URI  ... and a URI that matches both
#   TS_DIR        a scratch directory the runner can write
#   TS_AGENT_LOG  the agent's log (XDG_RUNTIME_DIR/p11enroll/agent.log)
#   TS_RUN        the command running p11enroll (default "$P11ENROLL");
#                 a function for another uid
#   TS_OWN        a command giving a file to the runner's uid (default
#                 none: the runner is the caller)
# and may set
#   TS_CALLS      a p11fault call log: then a wrong PIN must show
#                 exactly one C_Login there
#
# Results are TAP lines (tap.sh); every refused operation is checked for
# its exact message, its exit code and an unchanged object list.

TS_RUN=${TS_RUN:-$P11ENROLL}
TS_OWN=${TS_OWN:-:}
TS_KEYGEN_SKIP=${TS_KEYGEN_SKIP:-not generated}

# ts_do ARGS...: runs p11enroll, output (both streams) in $out, exit
# status in $rc.  ts_pin PIN ARGS...: the same with PIN on stdin.
# Its standard output alone is in $TS_DIR/stdout (for JSON).
ts_do()
{
	$TS_RUN "$@" </dev/null >"$TS_DIR/stdout" 2>"$TS_DIR/stderr"
	rc=$?
	out=$(cat "$TS_DIR/stderr" "$TS_DIR/stdout")
	printf '%s\n' "--- p11enroll $* (exit $rc)" "$out" >&2
}

ts_pin()
{
	ts_p=$1
	shift
	printf '%s\n' "$ts_p" | $TS_RUN --pin-stdin "$@" >"$TS_DIR/stdout" \
	    2>"$TS_DIR/stderr"
	rc=$?
	out=$(cat "$TS_DIR/stderr" "$TS_DIR/stdout")
	printf '%s\n' "--- p11enroll --pin-stdin $* (exit $rc)" "$out" >&2
}

# ts_expect DESC RC TEXT: $rc is RC and $out contains TEXT literally.
ts_expect()
{
	case "$rc:$out" in
	"$2:"*"$3"*) tap_ok "$1" ;;
	*)
		tap_fail "$1"
		tap_diag "expected exit $2 and: $3"
		tap_diag "got exit $rc: $out"
		;;
	esac
}

# ts_json EXPR: EXPR (Python, over j = the JSON output) is true.
ts_json()
{
	python3 <"$TS_DIR/stdout" -c '
import json, sys
j = json.load(sys.stdin)
sys.exit(0 if eval("(" + sys.argv[1] + ")") else 1)' "$1"
}

# ts_snapshot FILE: the token's objects (after login), one canonical
# line each, sorted.
ts_snapshot()
{
	printf '%s\n' "$TS_PIN" | $TS_RUN --pin-stdin --json token objects \
	    "$TS_URI" --login 2>"$TS_DIR/snapshot.err" | python3 -c '
import json, sys
j = json.load(sys.stdin)
for o in sorted(json.dumps(o, sort_keys=True) for o in j["objects"]):
    print(o)' >"$1"
}

# ts_unchanged DESC BEFORE: the object list is still BEFORE.
ts_unchanged()
{
	ts_snapshot "$TS_DIR/after"
	if [ -s "$1" ] && cmp -s "$1" "$TS_DIR/after"; then
		tap_ok "$2"
	else
		tap_fail "$2"
		tap_diag "$(diff "$1" "$TS_DIR/after")"
	fi
}

# ts_count KIND [ID]: how many objects of KIND (with ID) were listed.
ts_count()
{
	python3 <"$TS_DIR/stdout" -c '
import json, sys
j = json.load(sys.stdin)
print(sum(1 for o in j["objects"] if o["kind"] == sys.argv[1]
          and (len(sys.argv) < 3 or o["id"] == sys.argv[2])))' "$@"
}

# ts_logins: failed C_Login lines in the agent log so far.
ts_failed_logins()
{
	grep -c 'C_Login: CKR_PIN_INCORRECT (0x000000a0)' "$TS_AGENT_LOG" \
	    2>/dev/null
}

ts_tokens()
{
	ts_do --json tokens "$TS_URI"
	if ts_json 'len(j["tokens"]) == 1' 2>/dev/null; then
		tap_ok "$TS_NAME: tokens --json URI gives one token"
	else
		tap_fail "$TS_NAME: tokens --json URI gives one token"
	fi
	TS_FULL_URI=$(python3 <"$TS_DIR/stdout" -c 'import json,sys; print(json.load(sys.stdin)["tokens"][0]["uri"])' 2>/dev/null)
	tap_check "$TS_NAME: ... with its label, flags and key types" ts_json "
j['tokens'][0]['label'] == '$TS_LABEL' and j['tokens'][0]['present'] and
j['tokens'][0]['flags']['login_required'] and
not j['tokens'][0]['flags']['pin_locked'] and
j['tokens'][0]['key_types'] == '$TS_KEYTYPES'.split() and
j['tokens'][0]['uri'].startswith('pkcs11:') and
'token=' in j['tokens'][0]['uri']"
	ts_do tokens
	ts_lines=$(printf '%s\n' "$out" | grep -A4 -Fx "$TS_FULL_URI")
	case $ts_lines in
	*"  token:  $TS_LABEL (serial "*"  flags:  login_required"*"  keys:   $TS_KEYTYPES"*)
		tap_ok "$TS_NAME: tokens lists it: URI, label, flags, key types" ;;
	*)
		tap_fail "$TS_NAME: tokens lists it: URI, label, flags, key types"
		tap_diag "$out"
		;;
	esac
	tap_check "$TS_NAME: tokens exits 0" [ "$rc" -eq 0 ]
}

ts_keygen()
{
	TS_IDS=
	for ts_t in $TS_KEYTYPES; do
		case " $TS_KEYGEN " in
		*" $ts_t "*) ;;
		*)
			tap_skip "$TS_NAME: keygen --type $ts_t" "$TS_KEYGEN_SKIP"
			continue
			;;
		esac
		ts_pin "$TS_PIN" --json token keygen "$TS_URI" --type "$ts_t" \
		    --label "kg-$ts_t"
		ts_id=$(python3 <"$TS_DIR/stdout" -c '
import json, sys; print(json.load(sys.stdin)["id"])' 2>/dev/null)
		if [ "$rc" -eq 0 ] && ts_json "j['key_type'] == '$ts_t' and
len(j['id']) == 40" 2>/dev/null; then
			tap_ok "$TS_NAME: keygen --type $ts_t (random 20-byte id)"
		else
			tap_fail "$TS_NAME: keygen --type $ts_t (random 20-byte id)"
		fi
		# the SubjectPublicKeyInfo in the reply is a key of that type
		python3 <"$TS_DIR/stdout" -c '
import base64, json, sys
sys.stdout.buffer.write(base64.b64decode(json.load(sys.stdin)["spki"]))' \
		    >"$TS_DIR/$ts_t.spki" 2>/dev/null
		ts_txt=$(openssl pkey -pubin -inform DER -in "$TS_DIR/$ts_t.spki" \
		    -noout -text 2>&1)
		case $ts_t:$ts_txt in
		ec-p256:*"NIST CURVE: P-256"* | ec-p384:*"NIST CURVE: P-384"* | \
		rsa-2048:*"(2048 bit)"* | rsa-3072:*"(3072 bit)"* | \
		rsa-4096:*"(4096 bit)"*)
			tap_ok "$TS_NAME: ... its SPKI is a $ts_t public key" ;;
		*)
			tap_fail "$TS_NAME: ... its SPKI is a $ts_t public key"
			tap_diag "$ts_txt"
			;;
		esac
		TS_IDS="$TS_IDS $ts_t:$ts_id"
		eval "TS_ID_$(echo "$ts_t" | tr - _)=\$ts_id"
	done
	ts_pin "$TS_PIN" token keygen "$TS_URI" --id 0a0b0c --label explicit
	ts_expect "$TS_NAME: keygen --id 0a0b0c (default type ec-p256)" 0 \
	    "generated ec-p256 key pair, id 0a0b0c"

	# objects: private keys only after login
	ts_do --json token objects "$TS_URI"
	ts_n=$(ts_count private-key)
	ts_np=$(ts_count public-key)
	tap_check "$TS_NAME: objects without --login shows no private key" \
	    eval '[ "$rc" -eq 0 ] && [ "$ts_n" = 0 ] &&
	    ts_json "j[\"logged_in\"] is False"'
	ts_want=$(($(echo $TS_KEYGEN | wc -w) + 1))
	tap_check "$TS_NAME: ... but the $ts_want public keys" \
	    [ "$ts_np" = "$ts_want" ]
	ts_pin "$TS_PIN" --json token objects "$TS_URI" --login
	tap_check "$TS_NAME: objects --login shows the $ts_want private keys" \
	    eval '[ "$rc" -eq 0 ] && [ "$(ts_count private-key)" = "$ts_want" ] &&
	    ts_json "j[\"logged_in\"] is True"'
	ts_ok=yes
	for ts_p in $TS_IDS; do
		ts_json "any(o['kind'] == 'public-key' and
o['id'] == '${ts_p#*:}' and o['key_type'] == '${ts_p%%:*}' and
o['label'] == 'kg-${ts_p%%:*}' for o in j['objects'])" || ts_ok=no
		[ "$(ts_count private-key "${ts_p#*:}")" = 1 ] || ts_ok=no
	done
	ts_json "any(o['id'] == '0a0b0c' and o['label'] == 'explicit' and
o['kind'] == 'private-key' for o in j['objects'])" || ts_ok=no
	tap_check "$TS_NAME: ... each key pair with its id, label and type" \
	    [ "$ts_ok" = yes ]
	ts_pin "$TS_PIN" token objects "$TS_URI" --login
	case $out in
	*"private-key"*"id 0a0b0c  label \"explicit\""*)
		tap_ok "$TS_NAME: objects (text) lists the keys" ;;
	*) tap_fail "$TS_NAME: objects (text) lists the keys" ;;
	esac
}

ts_csr_import()
{
	ts_id=$TS_ID_ec_p256
	ts_pin "$TS_PIN" token csr "$TS_URI" --id "$ts_id" \
	    --subject "/CN=山田太郎/O=Example" --out "$TS_DIR/req.pem"
	tap_check "$TS_NAME: csr --subject --out exits 0" [ "$rc" -eq 0 ]
	tap_check "$TS_NAME: ... openssl req -verify accepts the CSR" \
	    openssl req -in "$TS_DIR/req.pem" -verify -noout
	ts_s=$(openssl req -in "$TS_DIR/req.pem" -noout -subject \
	    -nameopt RFC2253,-esc_msb 2>&1)
	tap_check "$TS_NAME: ... the UTF-8 subject round-trips ($ts_s)" \
	    [ "$ts_s" = "subject=O=Example,CN=山田太郎" ]
	openssl req -in "$TS_DIR/req.pem" -noout -pubkey 2>/dev/null |
	    openssl pkey -pubin -outform DER -out "$TS_DIR/req.spki" 2>/dev/null
	tap_check "$TS_NAME: ... its key is the one keygen returned" \
	    cmp "$TS_DIR/req.spki" "$TS_DIR/ec-p256.spki"
	# an RSA key signs a CSR too (to stdout)
	if [ -n "${TS_ID_rsa_2048-}" ]; then
		ts_pin "$TS_PIN" token csr "$TS_URI" --id "$TS_ID_rsa_2048" \
		    --subject "/CN=rsa"
		cp "$TS_DIR/stdout" "$TS_DIR/rsa-req.pem"
		tap_check "$TS_NAME: csr of the rsa-2048 key to stdout verifies" \
		    openssl req -in "$TS_DIR/rsa-req.pem" -verify -noout
	fi

	# the client CA signs it
	printf '%s\n' "[ext]" "basicConstraints=critical,CA:FALSE" \
	    "keyUsage=critical,digitalSignature" \
	    "extendedKeyUsage=clientAuth" \
	    "subjectAltName=DNS:client.example,email:taro@example.jp" \
	    >"$TS_DIR/leaf.ext"
	openssl x509 -req -in "$TS_DIR/req.pem" -CA "$PKI_CLIENT_CA_CERT" \
	    -CAkey "$PKI_CLIENT_CA_KEY" -CAcreateserial \
	    -CAserial "$TS_DIR/ca.srl" -days 2 -sha256 -extfile "$TS_DIR/leaf.ext" \
	    -extensions ext -out "$TS_DIR/leaf.pem" >&2 2>&1 ||
	    tap_bail "the test CA cannot sign the CSR"
	cat "$TS_DIR/leaf.pem" "$PKI_CLIENT_CA_CERT" >"$TS_DIR/chain.pem"

	ts_snapshot "$TS_DIR/before"
	ts_pin "$TS_PIN" token import "$TS_URI" "$TS_DIR/leaf.pem" \
	    --id "$TS_ID_ec_p384"
	ts_expect "$TS_NAME: import with --id of another key: CertKeyMismatch" 1 \
	    "p11enroll: error: the certificate does not belong to the key: no certificate in the file belongs to the key with this id: nothing stored"
	ts_unchanged "$TS_DIR/before" "$TS_NAME: ... nothing stored"
	ts_pin "$TS_PIN" token import "$TS_URI" "$PKI_CLIENT_CERT"
	ts_expect "$TS_NAME: import of a certificate of no key on the token: CertKeyMismatch" 1 \
	    "p11enroll: error: the certificate does not belong to the key: no certificate in the file belongs to a key on the token: nothing stored"
	ts_unchanged "$TS_DIR/before" "$TS_NAME: ... nothing stored"

	ts_pin "$TS_PIN" token import "$TS_URI" "$TS_DIR/chain.pem" \
	    --label "taro"
	ts_expect "$TS_NAME: import leaf + CA stores and verifies the pair" 0 \
	    "stored the certificate of key $ts_id and checked that they belong together"
	ts_expect "$TS_NAME: ... and adds the CA" 0 \
	    "CA certificates: 1 added, 0 already present"
	ts_pin "$TS_PIN" --json token objects "$TS_URI" --login
	ts_ser=$(openssl x509 -in "$TS_DIR/leaf.pem" -noout -serial |
	    sed 's/^serial=//')
	tap_check "$TS_NAME: ... the leaf is on the token with the key's id" \
	    ts_json "[int(o['serial'], 16) for o in j['objects']
if o['kind'] == 'certificate' and o['id'] == '$ts_id' and
not o['authority'] and o['label'] == 'taro'] == [int('$ts_ser', 16)]"
	tap_check "$TS_NAME: ... and the CA as an authority certificate" \
	    ts_json "[o['subject'] for o in j['objects']
if o['kind'] == 'certificate' and o['authority']] ==
['/O=p11enroll test/CN=p11enroll test client CA']"
	ts_snapshot "$TS_DIR/imported"
	ts_pin "$TS_PIN" --json token import "$TS_URI" "$TS_DIR/chain.pem" \
	    --label "taro"
	tap_check "$TS_NAME: importing again is a no-op (ca_present 1)" \
	    eval '[ "$rc" -eq 0 ] && ts_json "j[\"ca_present\"] == 1 and
j[\"ca_added\"] == 0 and j[\"verified\"] and j[\"id\"] == \"$ts_id\""'
	ts_unchanged "$TS_DIR/imported" "$TS_NAME: ... and stores nothing twice"

	# a chain alone: the server CA is new, nothing else happens
	ts_pin "$TS_PIN" token import "$TS_URI" "$PKI_SERVER_CA_CERT"
	ts_expect "$TS_NAME: CA-only import adds the CA" 0 \
	    "CA certificates: 1 added, 0 already present"
	case $out in
	*"stored the certificate"*) tap_fail "$TS_NAME: ... and no leaf" ;;
	*) tap_ok "$TS_NAME: ... and no leaf" ;;
	esac
	ts_pin "$TS_PIN" --json token objects "$TS_URI" --login
	tap_check "$TS_NAME: ... two authority certificates now" \
	    ts_json "sum(1 for o in j['objects'] if o['kind'] == 'certificate'
and o['authority']) == 2"

	# re-enrollment: the CSR of another key copies the leaf's subject
	ts_pin "$TS_PIN" token csr "$TS_URI" --id 0a0b0c \
	    --copy-from "$TS_DIR/leaf.pem" --out "$TS_DIR/copy.pem"
	tap_check "$TS_NAME: csr --copy-from verifies" \
	    openssl req -in "$TS_DIR/copy.pem" -verify -noout
	tap_check "$TS_NAME: ... and keeps the subject byte for byte" eval '
	    [ "$(openssl req -in "$TS_DIR/copy.pem" -noout -subject -nameopt RFC2253,-esc_msb)" = \
	      "subject=O=Example,CN=山田太郎" ] &&
	    openssl req -in "$TS_DIR/copy.pem" -noout -text |
	    grep -q "DNS:client.example, email:taro@example.jp"'
}

ts_refusals()
{
	ts_snapshot "$TS_DIR/before"
	tap_check "$TS_NAME: (object list taken)" [ -s "$TS_DIR/before" ]

	ts_pin "$TS_PIN" token keygen "$TS_URI" --id 0a0b0c --type ec-p384
	ts_expect "$TS_NAME: keygen with an id in use: IdInUse" 1 \
	    "p11enroll: error: an object with this id already exists on the token: An object with this CKA_ID is already on '$TS_LABEL'."
	ts_unchanged "$TS_DIR/before" "$TS_NAME: ... nothing changed"

	if [ -n "$TS_UNSUPPORTED" ]; then
		ts_pin "$TS_PIN" token keygen "$TS_URI" --type "$TS_UNSUPPORTED"
		ts_expect "$TS_NAME: keygen --type $TS_UNSUPPORTED: MechanismUnsupported, with the types it has" 1 \
		    "p11enroll: error: the token does not support this key type or mechanism: '$TS_LABEL' cannot generate $TS_UNSUPPORTED keys. It can generate: $TS_KEYTYPES"
		ts_unchanged "$TS_DIR/before" "$TS_NAME: ... nothing changed"
	else
		tap_skip "$TS_NAME: keygen of an unsupported type" \
		    "the token generates every key type p11enroll uses"
		tap_skip "$TS_NAME: ... nothing changed" "as above"
	fi

	ts_do token objects "$TS_AMBIG_URI"
	ts_expect "$TS_NAME: a URI matching two tokens: TokenAmbiguous" 1 \
	    "p11enroll: error: several tokens match the URI: Tokens matching $TS_AMBIG_URI:"
	case $out in
	*"  $TS_FULL_URI (module "*)
		case $out in
		*"  $TS_OTHER_URI (module "*"Add serial= to the URI to choose one."*)
			tap_ok "$TS_NAME: ... listing both" ;;
		*) tap_fail "$TS_NAME: ... listing both" ;;
		esac ;;
	*) tap_fail "$TS_NAME: ... listing both" ;;
	esac
	ts_pin "$TS_PIN" token keygen "$TS_AMBIG_URI"
	ts_expect "$TS_NAME: keygen on it is refused too (exit 1)" 1 \
	    "p11enroll: error: several tokens match the URI"
	ts_unchanged "$TS_DIR/before" "$TS_NAME: ... nothing changed"

	ts_do token objects "pkcs11:token=no-such-token"
	ts_expect "$TS_NAME: a URI matching no token: exit 4, TokenNotFound" 4 \
	    "p11enroll: error: no token matches the URI: No token matches pkcs11:token=no-such-token. Tokens present:"
	case $out in
	*"  $TS_FULL_URI (module "*) tap_ok "$TS_NAME: ... listing ours" ;;
	*) tap_fail "$TS_NAME: ... listing ours" ;;
	esac

	ts_f0=$(ts_failed_logins)
	ts_pin "wrong-$TS_PIN" token keygen "$TS_URI" --type ec-p256
	ts_expect "$TS_NAME: a wrong PIN: PinIncorrect, exit 1" 1 \
	    "p11enroll: error: the PIN is incorrect: '$TS_LABEL' refused the PIN; it is not tried again."
	ts_f1=$(ts_failed_logins)
	tap_check "$TS_NAME: ... tried once (agent log: $ts_f0 -> $ts_f1 failed C_Login)" \
	    [ "$((ts_f1 - ts_f0))" -eq 1 ]
	if [ -n "${TS_CALLS-}" ]; then
		ts_l=$(wc -l <"$TS_CALLS")
		ts_pin "wrong-$TS_PIN" token objects "$TS_URI" --login
		tap_check "$TS_NAME: ... exactly one C_Login in the call log" \
		    [ "$(tail -n +"$((ts_l + 1))" "$TS_CALLS" |
		    grep -c '^C_Login ')" -eq 1 ]
	fi
	ts_unchanged "$TS_DIR/before" "$TS_NAME: ... nothing created, and the right PIN still works"

	# pin-source: a file of the user's, 0600; a 0644 one is refused
	printf '%s\n' "$TS_PIN" >"$TS_DIR/pin"
	chmod 0600 "$TS_DIR/pin"
	$TS_OWN "$TS_DIR/pin"
	ts_do --json token objects "$TS_URI?pin-source=file:$TS_DIR/pin" --login
	tap_check "$TS_NAME: pin-source=file: (0600) logs in without a prompt" \
	    eval '[ "$rc" -eq 0 ] && [ "$(ts_count private-key)" -gt 0 ]'
	chmod 0644 "$TS_DIR/pin"
	ts_do token keygen "$TS_URI?pin-source=file:$TS_DIR/pin"
	ts_expect "$TS_NAME: a 0644 PIN file: UnsafePath" 1 \
	    "p11enroll: error: unsafe ownership or permissions on a private path: The PIN file $TS_DIR/pin must be a regular file of yours, mode 0600 or 0400."
	ts_unchanged "$TS_DIR/before" "$TS_NAME: ... nothing changed"
	ts_do token keygen "$TS_URI;pin-value=$TS_PIN"
	ts_expect "$TS_NAME: pin-value= in the URI is refused" 1 \
	    "p11enroll: error: invalid parameter: The URI carries pin-value: PINs do not go into URIs; use pin-source=file:PATH or the prompt."
	ts_unchanged "$TS_DIR/before" "$TS_NAME: ... nothing changed"
}

ts_delete()
{
	ts_id=$TS_ID_ec_p256
	ts_pin "$TS_PIN" token delete "$TS_URI" --id "$ts_id"
	ts_expect "$TS_NAME: delete removes key pair and certificate" 0 \
	    "deleted 3 object(s) with id $ts_id"
	ts_pin "$TS_PIN" --json token objects "$TS_URI" --login
	tap_check "$TS_NAME: ... none of them is left" eval \
	    'ts_json "not any(o[\"id\"] == \"$ts_id\" for o in j[\"objects\"])"'
	tap_check "$TS_NAME: ... the other keys and the CAs are" ts_json \
	    "sum(1 for o in j['objects'] if o['kind'] == 'private-key') == $(echo $TS_KEYGEN | wc -w) and
sum(1 for o in j['objects'] if o['kind'] == 'certificate') == 2"
	ts_snapshot "$TS_DIR/before"
	ts_pin "$TS_PIN" token delete "$TS_URI" --id "$ts_id"
	ts_expect "$TS_NAME: delete again: KeyNotFound" 1 \
	    "p11enroll: error: no key with this id on the token: Nothing with this id on '$TS_LABEL'."
	ts_unchanged "$TS_DIR/before" "$TS_NAME: ... nothing changed"
}

tokensuite_run()
{
	TS_KEYGEN=${TS_KEYGEN:-$TS_KEYTYPES}
	ts_tokens
	ts_keygen
	ts_csr_import
	ts_refusals
	ts_delete
}
