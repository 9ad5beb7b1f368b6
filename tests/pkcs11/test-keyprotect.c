/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Proves that a key pair generated with the template of DESIGN §5 cannot
 * leave the token: its value cannot be read, its protection cannot be
 * lowered, it cannot be wrapped out, and it is invisible before a login.
 *
 * Independent of pkcs11/: it speaks to the modules registered with
 * p11-kit directly.  Run by tests/pkcs11/keyprotect.sh, which makes a
 * fresh SoftHSM2 token and exports SOFTHSM_LABEL, SOFTHSM_SERIAL and
 * SOFTHSM_PIN.  The exact return codes are printed as TAP diagnostics.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <p11-kit/p11-kit.h>

static CK_FUNCTION_LIST **modules;
static CK_FUNCTION_LIST *f;
static CK_SLOT_ID slot;
static CK_SESSION_HANDLE session;
static CK_OBJECT_HANDLE pub, priv;
static CK_BYTE id[] = { 0x6b, 0x70, 0x2d, 0x74, 0x65, 0x73, 0x74, 0x01, 0x02,
	0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09 };

static const char *
ckr_name(CK_RV rv)
{
	switch (rv) {
	case CKR_OK:
		return "CKR_OK";
	case CKR_ATTRIBUTE_READ_ONLY:
		return "CKR_ATTRIBUTE_READ_ONLY";
	case CKR_ATTRIBUTE_SENSITIVE:
		return "CKR_ATTRIBUTE_SENSITIVE";
	case CKR_ATTRIBUTE_TYPE_INVALID:
		return "CKR_ATTRIBUTE_TYPE_INVALID";
	case CKR_ATTRIBUTE_VALUE_INVALID:
		return "CKR_ATTRIBUTE_VALUE_INVALID";
	case CKR_ACTION_PROHIBITED:
		return "CKR_ACTION_PROHIBITED";
	case CKR_KEY_UNEXTRACTABLE:
		return "CKR_KEY_UNEXTRACTABLE";
	case CKR_KEY_NOT_WRAPPABLE:
		return "CKR_KEY_NOT_WRAPPABLE";
	case CKR_TEMPLATE_INCONSISTENT:
		return "CKR_TEMPLATE_INCONSISTENT";
	case CKR_MECHANISM_INVALID:
		return "CKR_MECHANISM_INVALID";
	case CKR_USER_NOT_LOGGED_IN:
		return "CKR_USER_NOT_LOGGED_IN";
	case CKR_OBJECT_HANDLE_INVALID:
		return "CKR_OBJECT_HANDLE_INVALID";
	default:
		return "other";
	}
}

/* A TAP diagnostic line with the exact code, for the log and the report. */
static void
record(const char *what, CK_RV rv)
{
	printf("# %s = %s (0x%lx)\n", what, ckr_name(rv), (unsigned long)rv);
	fflush(stdout);
}

static int
padded_equal(const unsigned char *field, size_t len, const char *want)
{
	size_t n = strlen(want), i;

	if (n > len || memcmp(field, want, n) != 0)
		return 0;
	for (i = n; i < len; i++)
		if (field[i] != ' ')
			return 0;
	return 1;
}

/* The module and slot holding the test token, by label and serial. */
static int
find_token(const char *label, const char *serial)
{
	CK_SLOT_ID slots[64];
	CK_TOKEN_INFO ti;
	CK_ULONG n, i;
	int m, found = 0;

	for (m = 0; modules[m] != NULL; m++) {
		n = 64;
		if (modules[m]->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK)
			continue;
		for (i = 0; i < n && i < 64; i++) {
			if (modules[m]->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
				continue;
			if (!padded_equal(ti.label, sizeof(ti.label), label))
				continue;
			if (serial != NULL &&
			    !padded_equal(ti.serialNumber,
				sizeof(ti.serialNumber), serial))
				continue;
			f = modules[m];
			slot = slots[i];
			found++;
		}
	}
	return found;
}

static CK_RV
login(CK_SESSION_HANDLE s)
{
	const char *pin = getenv("SOFTHSM_PIN");

	return f->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin));
}

/* DESIGN §5: the private key token, private, sensitive, unextractable. */
static CK_RV
generate_p256(void)
{
	static CK_BYTE p256[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d,
		0x03, 0x01, 0x07 };
	static char label[] = "keyprotect";
	CK_MECHANISM mech = { CKM_EC_KEY_PAIR_GEN, NULL, 0 };
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ATTRIBUTE pub_t[] = {
		{ CKA_EC_PARAMS, p256, sizeof(p256) },
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_PRIVATE, &no, sizeof(no) },
		{ CKA_VERIFY, &yes, sizeof(yes) },
		{ CKA_ID, id, sizeof(id) },
		{ CKA_LABEL, label, sizeof(label) - 1 },
	};
	CK_ATTRIBUTE priv_t[] = {
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_PRIVATE, &yes, sizeof(yes) },
		{ CKA_SENSITIVE, &yes, sizeof(yes) },
		{ CKA_EXTRACTABLE, &no, sizeof(no) },
		{ CKA_SIGN, &yes, sizeof(yes) },
		{ CKA_DECRYPT, &no, sizeof(no) },
		{ CKA_UNWRAP, &no, sizeof(no) },
		{ CKA_DERIVE, &no, sizeof(no) },
		{ CKA_ID, id, sizeof(id) },
		{ CKA_LABEL, label, sizeof(label) - 1 },
	};

	return f->C_GenerateKeyPair(session, &mech, pub_t,
	    sizeof(pub_t) / sizeof(pub_t[0]), priv_t,
	    sizeof(priv_t) / sizeof(priv_t[0]), &pub, &priv);
}

static int
setup(void **state)
{
	const char *label = getenv("SOFTHSM_LABEL");
	const char *serial = getenv("SOFTHSM_SERIAL");
	CK_RV rv;
	int n;

	(void)state;
	if (label == NULL || getenv("SOFTHSM_PIN") == NULL) {
		fprintf(stderr, "SOFTHSM_LABEL and SOFTHSM_PIN must be set\n");
		return -1;
	}
	modules = p11_kit_modules_load_and_initialize(0);
	if (modules == NULL) {
		fprintf(stderr, "p11-kit: %s\n", p11_kit_message());
		return -1;
	}
	if ((n = find_token(label, serial)) != 1) {
		fprintf(stderr, "%d tokens labelled %s\n", n, label);
		return -1;
	}
	rv = f->C_OpenSession(
	    slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &session);
	if (rv != CKR_OK) {
		record("C_OpenSession", rv);
		return -1;
	}
	if ((rv = login(session)) != CKR_OK) {
		record("C_Login", rv);
		return -1;
	}
	if ((rv = generate_p256()) != CKR_OK) {
		record("C_GenerateKeyPair", rv);
		return -1;
	}
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	if (f != NULL && session != CK_INVALID_HANDLE) {
		/* The token is thrown away, but leave it as we found it. */
		if (priv != CK_INVALID_HANDLE)
			f->C_DestroyObject(session, priv);
		if (pub != CK_INVALID_HANDLE)
			f->C_DestroyObject(session, pub);
		f->C_Logout(session);
		f->C_CloseSession(session);
	}
	if (modules != NULL)
		p11_kit_modules_finalize_and_release(modules);
	return 0;
}

static CK_BBOOL
get_bool(CK_OBJECT_HANDLE obj, CK_ATTRIBUTE_TYPE type)
{
	CK_BBOOL v = 0xAA;
	CK_ATTRIBUTE a = { type, &v, sizeof(v) };

	assert_int_equal(f->C_GetAttributeValue(session, obj, &a, 1), CKR_OK);
	assert_int_equal(a.ulValueLen, sizeof(v));
	return v;
}

static CK_ULONG
count_objects(CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls)
{
	CK_ATTRIBUTE t[] = { { CKA_CLASS, &cls, sizeof(cls) },
		{ CKA_ID, id, sizeof(id) } };
	CK_OBJECT_HANDLE objs[16];
	CK_ULONG n = 0;

	assert_int_equal(f->C_FindObjectsInit(s, t, 2), CKR_OK);
	assert_int_equal(f->C_FindObjects(s, objs, 16, &n), CKR_OK);
	assert_int_equal(f->C_FindObjectsFinal(s), CKR_OK);
	return n;
}

/* Positive control: the key is there and signs. */
static void
test_key_signs(void **state)
{
	CK_MECHANISM mech = { CKM_ECDSA, NULL, 0 };
	CK_BYTE digest[32], sig[128];
	CK_ULONG siglen = sizeof(sig);
	CK_RV rv;

	(void)state;
	memset(digest, 0x5a, sizeof(digest));
	assert_int_equal(count_objects(session, CKO_PRIVATE_KEY), 1);
	assert_int_equal(f->C_SignInit(session, &mech, priv), CKR_OK);
	rv = f->C_Sign(session, digest, sizeof(digest), sig, &siglen);
	assert_int_equal(rv, CKR_OK);
	assert_int_equal(siglen, 64);
}

static void
test_value_sensitive(void **state)
{
	CK_BYTE value[256];
	CK_ATTRIBUTE a = { CKA_VALUE, NULL, 0 };
	CK_RV rv;
	size_t i;

	(void)state;
	/* Asking for the length ... */
	rv = f->C_GetAttributeValue(session, priv, &a, 1);
	record("C_GetAttributeValue(CKA_VALUE, length)", rv);
	assert_int_equal(rv, CKR_ATTRIBUTE_SENSITIVE);
	assert_true(a.ulValueLen == CK_UNAVAILABLE_INFORMATION);

	/* ... and for the bytes, with room for them. */
	memset(value, 0, sizeof(value));
	a.pValue = value;
	a.ulValueLen = sizeof(value);
	rv = f->C_GetAttributeValue(session, priv, &a, 1);
	record("C_GetAttributeValue(CKA_VALUE)", rv);
	assert_int_equal(rv, CKR_ATTRIBUTE_SENSITIVE);
	assert_true(a.ulValueLen == CK_UNAVAILABLE_INFORMATION);
	for (i = 0; i < sizeof(value); i++)
		assert_int_equal(value[i], 0);
}

static void
test_flags(void **state)
{
	(void)state;
	assert_int_equal(get_bool(priv, CKA_TOKEN), CK_TRUE);
	assert_int_equal(get_bool(priv, CKA_PRIVATE), CK_TRUE);
	assert_int_equal(get_bool(priv, CKA_SENSITIVE), CK_TRUE);
	assert_int_equal(get_bool(priv, CKA_EXTRACTABLE), CK_FALSE);
	assert_int_equal(get_bool(priv, CKA_ALWAYS_SENSITIVE), CK_TRUE);
	assert_int_equal(get_bool(priv, CKA_NEVER_EXTRACTABLE), CK_TRUE);
	assert_int_equal(get_bool(priv, CKA_SIGN), CK_TRUE);
	assert_int_equal(get_bool(pub, CKA_TOKEN), CK_TRUE);
}

static void
test_set_extractable(void **state)
{
	CK_BBOOL yes = CK_TRUE;
	CK_ATTRIBUTE a = { CKA_EXTRACTABLE, &yes, sizeof(yes) };
	CK_RV rv;

	(void)state;
	rv = f->C_SetAttributeValue(session, priv, &a, 1);
	record("C_SetAttributeValue(CKA_EXTRACTABLE=TRUE)", rv);
	assert_int_not_equal(rv, CKR_OK);
	assert_int_equal(get_bool(priv, CKA_EXTRACTABLE), CK_FALSE);
	assert_int_equal(get_bool(priv, CKA_NEVER_EXTRACTABLE), CK_TRUE);
}

static void
test_set_unsensitive(void **state)
{
	CK_BBOOL no = CK_FALSE;
	CK_ATTRIBUTE a = { CKA_SENSITIVE, &no, sizeof(no) };
	CK_RV rv;

	(void)state;
	rv = f->C_SetAttributeValue(session, priv, &a, 1);
	record("C_SetAttributeValue(CKA_SENSITIVE=FALSE)", rv);
	assert_int_not_equal(rv, CKR_OK);
	assert_int_equal(get_bool(priv, CKA_SENSITIVE), CK_TRUE);
	assert_int_equal(get_bool(priv, CKA_ALWAYS_SENSITIVE), CK_TRUE);
}

/* A copy may not be more exposed than the original either. */
static void
test_copy_extractable(void **state)
{
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ATTRIBUTE a[] = { { CKA_EXTRACTABLE, &yes, sizeof(yes) },
		{ CKA_TOKEN, &no, sizeof(no) } };
	CK_OBJECT_HANDLE copy = CK_INVALID_HANDLE;
	CK_RV rv;

	(void)state;
	rv = f->C_CopyObject(session, priv, a, 2, &copy);
	record("C_CopyObject(CKA_EXTRACTABLE=TRUE)", rv);
	if (rv == CKR_OK)
		f->C_DestroyObject(session, copy);
	assert_int_not_equal(rv, CKR_OK);
}

static void
test_wrap(void **state)
{
	CK_MECHANISM gen = { CKM_AES_KEY_GEN, NULL, 0 };
	CK_MECHANISM wrap = { CKM_AES_KEY_WRAP_PAD, NULL, 0 };
	CK_MECHANISM_INFO mi;
	CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
	CK_ULONG len = 32;
	CK_ATTRIBUTE t[] = { { CKA_TOKEN, &no, sizeof(no) },
		{ CKA_WRAP, &yes, sizeof(yes) },
		{ CKA_VALUE_LEN, &len, sizeof(len) } };
	CK_OBJECT_HANDLE kek = CK_INVALID_HANDLE;
	CK_BYTE out[4096];
	CK_ULONG outlen = sizeof(out);
	CK_RV rv;

	(void)state;
	if (f->C_GetMechanismInfo(slot, CKM_AES_KEY_WRAP_PAD, &mi) != CKR_OK ||
	    (mi.flags & CKF_WRAP) == 0)
		wrap.mechanism = CKM_AES_KEY_WRAP;
	printf("# wrapping with %s\n",
	    wrap.mechanism == CKM_AES_KEY_WRAP_PAD ? "CKM_AES_KEY_WRAP_PAD"
						   : "CKM_AES_KEY_WRAP");
	assert_int_equal(f->C_GenerateKey(session, &gen, t, 3, &kek), CKR_OK);

	/* Both the length query and the real call. */
	rv = f->C_WrapKey(session, &wrap, kek, priv, NULL, &outlen);
	record("C_WrapKey(length)", rv);
	assert_int_equal(rv, CKR_KEY_UNEXTRACTABLE);
	outlen = sizeof(out);
	rv = f->C_WrapKey(session, &wrap, kek, priv, out, &outlen);
	record("C_WrapKey", rv);
	assert_int_equal(rv, CKR_KEY_UNEXTRACTABLE);
	assert_int_equal(f->C_DestroyObject(session, kek), CKR_OK);
}

/*
 * A login belongs to the application, not the session, so log out to
 * see what a fresh session without one sees; then log in again.
 */
static void
test_invisible_without_login(void **state)
{
	CK_SESSION_HANDLE fresh = CK_INVALID_HANDLE;
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE t[] = { { CKA_CLASS, &cls, sizeof(cls) } };
	CK_OBJECT_HANDLE objs[16];
	CK_ULONG n = 99;
	CK_BYTE value[256];
	CK_ATTRIBUTE a = { CKA_VALUE, value, sizeof(value) };
	CK_RV rv;

	(void)state;
	assert_int_equal(f->C_Logout(session), CKR_OK);
	assert_int_equal(
	    f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &fresh),
	    CKR_OK);

	/* All private keys, not only ours. */
	assert_int_equal(f->C_FindObjectsInit(fresh, t, 1), CKR_OK);
	assert_int_equal(f->C_FindObjects(fresh, objs, 16, &n), CKR_OK);
	assert_int_equal(f->C_FindObjectsFinal(fresh), CKR_OK);
	printf("# private keys found before login: %lu\n", (unsigned long)n);
	assert_int_equal(n, 0);
	assert_int_equal(count_objects(fresh, CKO_PRIVATE_KEY), 0);
	/* Not a search that finds nothing anyway: the public key shows. */
	assert_int_equal(count_objects(fresh, CKO_PUBLIC_KEY), 1);

	/* The old handle does not reach the key either. */
	rv = f->C_GetAttributeValue(fresh, priv, &a, 1);
	record("C_GetAttributeValue(old handle, no login)", rv);
	assert_int_not_equal(rv, CKR_OK);

	assert_int_equal(f->C_CloseSession(fresh), CKR_OK);
	assert_int_equal(login(session), CKR_OK);
	assert_int_equal(count_objects(session, CKO_PRIVATE_KEY), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_signs),
		cmocka_unit_test(test_value_sensitive),
		cmocka_unit_test(test_flags),
		cmocka_unit_test(test_set_extractable),
		cmocka_unit_test(test_set_unsensitive),
		cmocka_unit_test(test_copy_extractable),
		cmocka_unit_test(test_wrap),
		cmocka_unit_test(test_invisible_without_login),
	};

	return cmocka_run_group_tests_name(
	    "keyprotect", tests, setup, teardown);
}
