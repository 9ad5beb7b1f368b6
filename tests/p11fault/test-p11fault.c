/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Tests of the p11fault module (tests/p11fault/p11fault.c), run by
 * tests/p11fault/p11fault.sh, which provides a fresh SoftHSM2 token and:
 *   P11FAULT_MODULE  the built p11fault.so
 *   P11FAULT_CONF    where the configuration goes (this program writes it)
 *   P11FAULT_DIR     a private scratch directory
 *   SOFTHSM_LABEL, SOFTHSM_PIN  the token
 */
#include "config.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <p11-kit/pkcs11.h>

static CK_FUNCTION_LIST_PTR f;
static void *handle;
static char conf_path[4096], log_path[4096], err_path[4096];

static void
write_file(const char *path, const char *text)
{
	char tmp[4200];
	FILE *fp;

	/* A new file renamed over the old: the module sees a new inode. */
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fp = fopen(tmp, "w");
	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(rename(tmp, path), 0);
}

/* Writes the configuration: "log = <log_path>" and then the lines. */
static void
set_conf(const char *lines)
{
	char text[4096 + 512];

	snprintf(text, sizeof(text), "# test\nlog = %s\n%s", log_path, lines);
	write_file(conf_path, text);
}

static char *
read_all(const char *path)
{
	static char buf[65536];
	size_t n;
	FILE *fp;

	buf[0] = '\0';
	if ((fp = fopen(path, "r")) == NULL)
		return buf;
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	buf[n] = '\0';
	fclose(fp);
	return buf;
}

/* C_Initialize with stderr captured into err_path. */
static CK_RV
initialize(void)
{
	int saved, fd;
	CK_RV rv;

	fflush(stderr);
	saved = dup(2);
	fd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(saved >= 0 && fd >= 0);
	dup2(fd, 2);
	close(fd);
	rv = f->C_Initialize(NULL);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	return rv;
}

/* The slot holding our token (found without the shim's help). */
static CK_SLOT_ID
our_slot(void)
{
	const char *label = getenv("SOFTHSM_LABEL");
	CK_SLOT_ID slots[16];
	CK_ULONG n = 16, i;
	CK_TOKEN_INFO ti;

	assert_int_equal(f->C_GetSlotList(CK_TRUE, slots, &n), CKR_OK);
	for (i = 0; i < n; i++) {
		if (f->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
			continue;
		if (strncmp((char *)ti.label, label, strlen(label)) == 0)
			return slots[i];
	}
	fail_msg("token %s not found", label);
	return 0;
}

static CK_SESSION_HANDLE
login(CK_SLOT_ID slot)
{
	const char *pin = getenv("SOFTHSM_PIN");
	CK_SESSION_HANDLE s;

	assert_int_equal(
	    f->C_OpenSession(
		slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s),
	    CKR_OK);
	assert_int_equal(
	    f->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin)), CKR_OK);
	return s;
}

static CK_RV
gen_p256(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE *pub, CK_OBJECT_HANDLE *priv)
{
	static CK_BYTE p256[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d,
		0x03, 0x01, 0x07 };
	CK_MECHANISM mech = { CKM_EC_KEY_PAIR_GEN, NULL, 0 };
	CK_BBOOL yes = CK_TRUE;
	CK_ATTRIBUTE pub_t[] = { { CKA_EC_PARAMS, p256, sizeof(p256) },
		{ CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_VERIFY, &yes, sizeof(yes) } };
	CK_ATTRIBUTE priv_t[] = { { CKA_TOKEN, &yes, sizeof(yes) },
		{ CKA_PRIVATE, &yes, sizeof(yes) },
		{ CKA_SENSITIVE, &yes, sizeof(yes) },
		{ CKA_SIGN, &yes, sizeof(yes) } };

	return f->C_GenerateKeyPair(s, &mech, pub_t, 3, priv_t, 4, pub, priv);
}

static CK_ULONG
count_private_keys(CK_SESSION_HANDLE s)
{
	CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
	CK_ATTRIBUTE t[] = { { CKA_CLASS, &cls, sizeof(cls) } };
	CK_OBJECT_HANDLE objs[64];
	CK_ULONG n = 0;

	assert_int_equal(f->C_FindObjectsInit(s, t, 1), CKR_OK);
	assert_int_equal(f->C_FindObjects(s, objs, 64, &n), CKR_OK);
	assert_int_equal(f->C_FindObjectsFinal(s), CKR_OK);
	return n;
}

static int
setup(void **state)
{
	const char *dir = getenv("P11FAULT_DIR");
	const char *mod = getenv("P11FAULT_MODULE");
	CK_C_GetFunctionList get;

	(void)state;
	if (dir == NULL || mod == NULL || getenv("P11FAULT_CONF") == NULL ||
	    getenv("SOFTHSM_LABEL") == NULL || getenv("SOFTHSM_PIN") == NULL)
		return -1;
	snprintf(conf_path, sizeof(conf_path), "%s", getenv("P11FAULT_CONF"));
	snprintf(log_path, sizeof(log_path), "%s/calls.log", dir);
	snprintf(err_path, sizeof(err_path), "%s/stderr", dir);
	if ((handle = dlopen(mod, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		fprintf(stderr, "%s\n", dlerror());
		return -1;
	}
	get = (CK_C_GetFunctionList)dlsym(handle, "C_GetFunctionList");
	if (get == NULL || get(&f) != CKR_OK)
		return -1;
	return 0;
}

static int
before(void **state)
{
	(void)state;
	unlink(log_path);
	set_conf("");
	return 0;
}

static void
test_function_list(void **state)
{
	void *const *fn;
	size_t n, i;
	Dl_info info;

	(void)state;
	assert_int_equal(f->version.major, 2);
	assert_int_equal(f->version.minor, 40);
	/* Every one of the 68 pointers is set and points into p11fault. */
	n = (sizeof(*f) - offsetof(CK_FUNCTION_LIST, C_Initialize)) /
	    sizeof(void *);
	assert_int_equal(n, 68);
	fn = (void *const *)&f->C_Initialize;
	for (i = 0; i < n; i++) {
		assert_non_null(fn[i]);
		assert_int_not_equal(dladdr(fn[i], &info), 0);
		assert_non_null(strstr(info.dli_fname, "p11fault"));
	}
	/* Nothing but the entry point is exported. */
	assert_null(dlsym(handle, "C_Initialize"));
	assert_null(dlsym(handle, "p11e_num_parse_u64"));
}

static void
test_not_initialized(void **state)
{
	CK_INFO info;

	(void)state;
	assert_int_equal(f->C_GetInfo(&info), CKR_CRYPTOKI_NOT_INITIALIZED);
}

static void
test_passthrough(void **state)
{
	const char *label = getenv("SOFTHSM_LABEL");
	CK_OBJECT_HANDLE pub, priv;
	CK_MECHANISM ecdsa = { CKM_ECDSA, NULL, 0 };
	CK_BYTE digest[32] = { 1, 2, 3 }, sig[128], point[128];
	CK_ATTRIBUTE ec_point = { CKA_EC_POINT, point, sizeof(point) };
	CK_ULONG sig_len = sizeof(sig);
	CK_SESSION_HANDLE s, s2;
	CK_TOKEN_INFO ti;
	CK_SLOT_ID slot;
	char *log;

	(void)state;
	assert_int_equal(initialize(), CKR_OK);
	slot = our_slot();
	assert_int_equal(f->C_GetTokenInfo(slot, &ti), CKR_OK);
	assert_memory_equal(ti.label, label, strlen(label));
	assert_true(ti.flags & CKF_TOKEN_INITIALIZED);

	/* A wrong PIN gets the real module's answer. */
	assert_int_equal(
	    f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s2),
	    CKR_OK);
	assert_int_equal(f->C_Login(s2, CKU_USER, (CK_UTF8CHAR_PTR) "0000", 4),
	    CKR_PIN_INCORRECT);
	assert_int_equal(f->C_CloseSession(s2), CKR_OK);

	s = login(slot);
	assert_int_equal(gen_p256(s, &pub, &priv), CKR_OK);
	assert_int_equal(f->C_GetAttributeValue(s, pub, &ec_point, 1), CKR_OK);
	assert_int_equal(ec_point.ulValueLen, 67); /* OCTET STRING, 04|X|Y */
	assert_int_equal(f->C_SignInit(s, &ecdsa, priv), CKR_OK);
	assert_int_equal(
	    f->C_Sign(s, digest, sizeof(digest), sig, &sig_len), CKR_OK);
	assert_int_equal(sig_len, 64);
	assert_int_equal(f->C_VerifyInit(s, &ecdsa, pub), CKR_OK);
	assert_int_equal(
	    f->C_Verify(s, digest, sizeof(digest), sig, sig_len), CKR_OK);
	assert_int_equal(f->C_Logout(s), CKR_OK);
	assert_int_equal(f->C_CloseSession(s), CKR_OK);
	assert_int_equal(f->C_Finalize(NULL), CKR_OK);

	log = read_all(log_path);
	assert_non_null(strstr(log, "C_Initialize rv=0x00000000\n"));
	assert_non_null(
	    strstr(log, "C_Login rv=0x000000a0 user=1 pin_len=4\n"));
	assert_non_null(strstr(log, "C_GenerateKeyPair rv=0x00000000\n"));
	assert_non_null(strstr(log, "C_Sign rv=0x00000000\n"));
	assert_non_null(strstr(log, "C_Finalize rv=0x00000000\n"));
	assert_null(strstr(log, "injected"));
	/* The PIN never reaches the log. */
	assert_null(strstr(log, getenv("SOFTHSM_PIN")));
}

static void
test_nth_call(void **state)
{
	CK_OBJECT_HANDLE pub, priv;
	CK_SESSION_HANDLE s;
	CK_ULONG before_n;
	char *log;

	(void)state;
	set_conf("fail = C_GenerateKeyPair 2 CKR_DEVICE_MEMORY\n");
	assert_int_equal(initialize(), CKR_OK);
	s = login(our_slot());
	before_n = count_private_keys(s);
	assert_int_equal(gen_p256(s, &pub, &priv), CKR_OK);
	assert_int_equal(gen_p256(s, &pub, &priv), CKR_DEVICE_MEMORY);
	assert_int_equal(gen_p256(s, &pub, &priv), CKR_OK);
	assert_int_equal(gen_p256(s, &pub, &priv), CKR_OK);
	/* The failed call never reached the token. */
	assert_int_equal(count_private_keys(s), before_n + 3);
	assert_int_equal(f->C_Finalize(NULL), CKR_OK);
	log = read_all(log_path);
	assert_non_null(strstr(log,
	    "C_GenerateKeyPair rv=0x00000000\n"
	    "C_GenerateKeyPair rv=0x00000031 injected\n"
	    "C_GenerateKeyPair rv=0x00000000\n"));
}

static void
test_plus_form(void **state)
{
	CK_TOKEN_INFO ti;
	CK_SLOT_ID slot;
	int i;

	(void)state;
	set_conf("fail = C_GetTokenInfo 3+ CKR_DEVICE_REMOVED\n");
	assert_int_equal(initialize(), CKR_OK);
	slot = our_slot(); /* C_GetTokenInfo call 1 (one token) */
	assert_int_equal(f->C_GetTokenInfo(slot, &ti), CKR_OK); /* 2 */
	for (i = 3; i < 8; i++)
		assert_int_equal(
		    f->C_GetTokenInfo(slot, &ti), CKR_DEVICE_REMOVED);
	assert_int_equal(f->C_Finalize(NULL), CKR_OK);
	/* Counting starts again at C_Initialize. */
	assert_int_equal(initialize(), CKR_OK);
	assert_int_equal(f->C_GetTokenInfo(slot, &ti), CKR_OK);
	assert_int_equal(f->C_Finalize(NULL), CKR_OK);
}

static void
test_rv_names(void **state)
{
	static const struct {
		const char *text;
		CK_RV rv;
	} cases[] = {
		{ "CKR_DEVICE_REMOVED", CKR_DEVICE_REMOVED },
		{ "CKR_TOKEN_NOT_PRESENT", CKR_TOKEN_NOT_PRESENT },
		{ "CKR_TOKEN_WRITE_PROTECTED", CKR_TOKEN_WRITE_PROTECTED },
		{ "CKR_DEVICE_MEMORY", CKR_DEVICE_MEMORY },
		{ "CKR_DEVICE_ERROR", CKR_DEVICE_ERROR },
		{ "CKR_PIN_INCORRECT", CKR_PIN_INCORRECT },
		{ "CKR_PIN_LOCKED", CKR_PIN_LOCKED },
		{ "CKR_SESSION_HANDLE_INVALID", CKR_SESSION_HANDLE_INVALID },
		{ "CKR_FUNCTION_FAILED", CKR_FUNCTION_FAILED },
		{ "CKR_GENERAL_ERROR", CKR_GENERAL_ERROR },
		{ "0x80000001", 0x80000001UL },
		{ "0xA4", CKR_PIN_LOCKED },
	};
	char line[128];
	CK_INFO info;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(line, sizeof(line), "fail = C_GetInfo 2 %s\n",
		    cases[i].text);
		set_conf(line);
		assert_int_equal(initialize(), CKR_OK);
		assert_int_equal(f->C_GetInfo(&info), CKR_OK);
		assert_int_equal(f->C_GetInfo(&info), cases[i].rv);
		assert_int_equal(f->C_GetInfo(&info), CKR_OK);
		assert_int_equal(f->C_Finalize(NULL), CKR_OK);
	}
}

static void
test_star(void **state)
{
	CK_SLOT_ID slots[16];
	CK_ULONG n = 16;
	CK_INFO info;

	(void)state;
	set_conf("fail = * 1+ CKR_DEVICE_REMOVED\n");
	assert_int_equal(initialize(), CKR_OK);
	assert_int_equal(f->C_GetInfo(&info), CKR_DEVICE_REMOVED);
	assert_int_equal(
	    f->C_GetSlotList(CK_TRUE, slots, &n), CKR_DEVICE_REMOVED);
	assert_int_equal(f->C_Finalize(NULL), CKR_OK);
}

static void
test_token_flags(void **state)
{
	CK_FLAGS added = CKF_USER_PIN_FINAL_TRY | CKF_USER_PIN_LOCKED |
	    CKF_USER_PIN_TO_BE_CHANGED | CKF_USER_PIN_COUNT_LOW |
	    CKF_PROTECTED_AUTHENTICATION_PATH | CKF_WRITE_PROTECTED;
	CK_TOKEN_INFO plain, ti;
	CK_SLOT_ID slot;

	(void)state;
	assert_int_equal(initialize(), CKR_OK);
	slot = our_slot();
	assert_int_equal(f->C_GetTokenInfo(slot, &plain), CKR_OK);
	assert_int_equal(plain.flags & added, 0);
	assert_true(plain.flags & CKF_LOGIN_REQUIRED);
	assert_int_equal(f->C_Finalize(NULL), CKR_OK);

	set_conf("token-flags = +CKF_USER_PIN_FINAL_TRY +CKF_USER_PIN_LOCKED"
		 " -CKF_LOGIN_REQUIRED\n"
		 "token-flags = +CKF_USER_PIN_TO_BE_CHANGED "
		 "+CKF_USER_PIN_COUNT_LOW\n"
		 "token-flags = +CKF_PROTECTED_AUTHENTICATION_PATH "
		 "+CKF_WRITE_PROTECTED\n");
	assert_int_equal(initialize(), CKR_OK);
	assert_int_equal(f->C_GetTokenInfo(slot, &ti), CKR_OK);
	assert_int_equal(
	    ti.flags, (plain.flags | added) & ~(CK_FLAGS)CKF_LOGIN_REQUIRED);
	assert_int_equal(f->C_Finalize(NULL), CKR_OK);

	/* A later "-" undoes an earlier "+". */
	set_conf("token-flags = +CKF_USER_PIN_FINAL_TRY\n"
		 "token-flags = -CKF_USER_PIN_FINAL_TRY\n");
	assert_int_equal(initialize(), CKR_OK);
	assert_int_equal(f->C_GetTokenInfo(slot, &ti), CKR_OK);
	assert_int_equal(ti.flags, plain.flags);
	assert_int_equal(f->C_Finalize(NULL), CKR_OK);
}

static void
test_token_absent(void **state)
{
	CK_SLOT_ID slots[16], slot;
	CK_ULONG n = 16;
	CK_SESSION_HANDLE s;
	CK_TOKEN_INFO ti;
	CK_SLOT_INFO si;

	(void)state;
	assert_int_equal(initialize(), CKR_OK);
	slot = our_slot();
	assert_int_equal(f->C_Finalize(NULL), CKR_OK);

	set_conf("token-absent = yes\n");
	assert_int_equal(initialize(), CKR_OK);
	assert_int_equal(f->C_GetSlotList(CK_TRUE, NULL, &n), CKR_OK);
	assert_int_equal(n, 0);
	n = 16;
	assert_int_equal(f->C_GetSlotList(CK_TRUE, slots, &n), CKR_OK);
	assert_int_equal(n, 0);
	n = 16;
	assert_int_equal(f->C_GetSlotList(CK_FALSE, slots, &n), CKR_OK);
	assert_true(n > 0);
	assert_int_equal(f->C_GetSlotInfo(slot, &si), CKR_OK);
	assert_int_equal(si.flags & CKF_TOKEN_PRESENT, 0);
	assert_int_equal(f->C_GetTokenInfo(slot, &ti), CKR_TOKEN_NOT_PRESENT);
	assert_int_equal(
	    f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s),
	    CKR_TOKEN_NOT_PRESENT);
	assert_int_equal(f->C_Finalize(NULL), CKR_OK);
}

static void
test_reload_while_running(void **state)
{
	CK_INFO info;

	(void)state;
	assert_int_equal(initialize(), CKR_OK);
	assert_int_equal(f->C_GetInfo(&info), CKR_OK);
	set_conf("fail = C_GetInfo 1+ CKR_DEVICE_ERROR\n");
	assert_int_equal(f->C_GetInfo(&info), CKR_DEVICE_ERROR);
	set_conf("token-absent = no\n");
	assert_int_equal(f->C_GetInfo(&info), CKR_OK);
	/* A broken file fails the call and keeps the previous state. */
	set_conf("bogus = 1\n");
	assert_int_equal(f->C_GetInfo(&info), CKR_GENERAL_ERROR);
	set_conf("");
	assert_int_equal(f->C_GetInfo(&info), CKR_OK);
	assert_int_equal(f->C_Finalize(NULL), CKR_OK);
}

static void
test_refused(void **state)
{
	static const struct {
		const char *conf;
		const char *msg;
	} cases[] = {
		{ "bogus = 1\n", ":3: unknown directive" },
		{ "\n\nmodul = /x.so\n", ":5: unknown directive" },
		{ "no equals sign\n", ":3: expected 'name = value'" },
		{ "fail = C_Nope 1 CKR_OK\n", ":3: unknown PKCS#11 function" },
		{ "fail = C_Sign 0 CKR_DEVICE_ERROR\n", ":3: bad call number" },
		{ "fail = C_Sign 1x CKR_DEVICE_ERROR\n",
		    ":3: bad call number" },
		{ "fail = C_Sign 1 CKR_NOPE\n", ":3: unknown CKR_ value" },
		{ "fail = C_Sign 1 0x\n", ":3: unknown CKR_ value" },
		{ "fail = C_Sign 1\n", ":3: expected 'fail =" },
		{ "fail = C_Sign 1 CKR_OK extra\n", ":3: expected 'fail =" },
		{ "token-flags = CKF_USER_PIN_LOCKED\n",
		    ":3: each flag needs" },
		{ "token-flags = +CKF_NOPE\n", ":3: unknown token flag" },
		{ "token-absent = maybe\n", ":3: expected yes or no" },
		{ "module = /nonexistent/module.so\n",
		    "/nonexistent/module.so" },
	};
	char expect[8192];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		set_conf(cases[i].conf);
		assert_int_equal(initialize(), CKR_GENERAL_ERROR);
		if (cases[i].msg[0] == ':')
			snprintf(expect, sizeof(expect), "p11fault: %s%s",
			    conf_path, cases[i].msg);
		else
			snprintf(expect, sizeof(expect), "%s", cases[i].msg);
		if (strstr(read_all(err_path), expect) == NULL)
			fail_msg("case %zu: '%s' not in stderr '%s'", i, expect,
			    read_all(err_path));
	}
	/* A refused configuration left the module usable. */
	set_conf("");
	assert_int_equal(initialize(), CKR_OK);
	assert_int_equal(f->C_Finalize(NULL), CKR_OK);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_function_list, before),
		cmocka_unit_test_setup(test_not_initialized, before),
		cmocka_unit_test_setup(test_passthrough, before),
		cmocka_unit_test_setup(test_nth_call, before),
		cmocka_unit_test_setup(test_plus_form, before),
		cmocka_unit_test_setup(test_rv_names, before),
		cmocka_unit_test_setup(test_star, before),
		cmocka_unit_test_setup(test_token_flags, before),
		cmocka_unit_test_setup(test_token_absent, before),
		cmocka_unit_test_setup(test_reload_while_running, before),
		cmocka_unit_test_setup(test_refused, before),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
