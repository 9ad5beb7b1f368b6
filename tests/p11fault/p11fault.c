/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * p11fault: a fault-injecting PKCS#11 pass-through module for tests.
 *
 * It dlopens a real module (SoftHSM2 unless configured otherwise) and
 * forwards every function of the v2.40 CK_FUNCTION_LIST to it, except
 * where its configuration asks for a fault.  The configuration is the
 * file named by the environment variable P11FAULT_CONF (without it the
 * module is a plain pass-through to SoftHSM2).  One directive per line,
 * blank lines and lines starting with '#' are ignored:
 *
 *   module = /usr/lib/softhsm/libsofthsm2.so
 *	The real module.  Read at C_Initialize only.
 *   fail = C_GenerateKeyPair 1 CKR_DEVICE_MEMORY
 *	The 1st call of C_GenerateKeyPair returns CKR_DEVICE_MEMORY without
 *	reaching the real module.  "2+" fails the 2nd call and every later
 *	one.  Calls are counted per function from C_Initialize (which is
 *	call 1 of C_Initialize).  The function may be "*": any function
 *	but C_Initialize, C_Finalize and C_GetFunctionList, each counted on
 *	its own.  The value is a CKR_ name (see rv_names[]) or hex "0x..".
 *	The first matching line wins.
 *   token-flags = +CKF_USER_PIN_FINAL_TRY -CKF_USER_PIN_COUNT_LOW
 *	Flags added to (+) or removed from (-) what C_GetTokenInfo reports.
 *   token-absent = yes
 *	Simulates a removed token in every slot: C_GetSlotList with
 *	tokenPresent=TRUE returns no slot, C_GetSlotInfo clears
 *	CKF_TOKEN_PRESENT, C_GetTokenInfo and C_OpenSession return
 *	CKR_TOKEN_NOT_PRESENT.  Calls on open sessions go through: add
 *	"fail = * 1+ CKR_DEVICE_REMOVED" for what a real removal does.
 *   log = /path/file
 *	Appends one line per call: "C_Name rv=0x00000000", with
 *	" injected" when the result came from a fault.  C_Login adds
 *	"pin_len=N"; no PIN byte is ever written.
 *   login-pin-file = /path/file
 *	TEST ONLY (browser tests): after each successful C_OpenSession on
 *	a token that is not logged in yet, p11fault itself calls the real
 *	C_Login(CKU_USER) with the first line of this file, logged as
 *	"C_Login rv=... autologin pin_len=N".  A headless browser can only
 *	ask for a PIN in a dialog nobody can answer; PKCS#11 login state
 *	is per process, so with this the browser finds the token logged
 *	in and never asks.  Nothing is faked: the token still requires
 *	the login and checks the real PIN (a wrong one fails, and the
 *	browser falls back to its prompt).  This belongs in tests only:
 *	the product never stores a PIN in a file for a browser.
 *
 * An unknown directive or a bad value makes C_Initialize return
 * CKR_GENERAL_ERROR after printing "p11fault: FILE:LINE: ..." to stderr.
 *
 * Re-reading: the file is read at C_Initialize, and then again on any
 * call that finds its mtime, size or inode changed, so a test can change
 * the faults of a running process (write a new file and rename it over
 * the old one so the change is atomic and always seen).  A re-read keeps
 * the call counters and the loaded module; a re-read that fails makes
 * that call return CKR_GENERAL_ERROR and keeps the previous faults.
 *
 * C_GetFunctionList is neither counted nor logged: it comes before
 * C_Initialize.
 */
#include "config.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

#include "common/num.h"

#ifndef P11FAULT_DEFAULT_MODULE
#define P11FAULT_DEFAULT_MODULE "/usr/lib/softhsm/libsofthsm2.so"
#endif

#define MAX_FAULTS 64
#define MAX_LINE 1024

/* All 68 functions of CK_FUNCTION_LIST v2.40, in the struct's order. */
/* clang-format off */
#define ALL_FUNCTIONS(X) \
	X(C_Initialize) \
	X(C_Finalize) \
	X(C_GetInfo) \
	X(C_GetFunctionList) \
	X(C_GetSlotList) \
	X(C_GetSlotInfo) \
	X(C_GetTokenInfo) \
	X(C_GetMechanismList) \
	X(C_GetMechanismInfo) \
	X(C_InitToken) \
	X(C_InitPIN) \
	X(C_SetPIN) \
	X(C_OpenSession) \
	X(C_CloseSession) \
	X(C_CloseAllSessions) \
	X(C_GetSessionInfo) \
	X(C_GetOperationState) \
	X(C_SetOperationState) \
	X(C_Login) \
	X(C_Logout) \
	X(C_CreateObject) \
	X(C_CopyObject) \
	X(C_DestroyObject) \
	X(C_GetObjectSize) \
	X(C_GetAttributeValue) \
	X(C_SetAttributeValue) \
	X(C_FindObjectsInit) \
	X(C_FindObjects) \
	X(C_FindObjectsFinal) \
	X(C_EncryptInit) \
	X(C_Encrypt) \
	X(C_EncryptUpdate) \
	X(C_EncryptFinal) \
	X(C_DecryptInit) \
	X(C_Decrypt) \
	X(C_DecryptUpdate) \
	X(C_DecryptFinal) \
	X(C_DigestInit) \
	X(C_Digest) \
	X(C_DigestUpdate) \
	X(C_DigestKey) \
	X(C_DigestFinal) \
	X(C_SignInit) \
	X(C_Sign) \
	X(C_SignUpdate) \
	X(C_SignFinal) \
	X(C_SignRecoverInit) \
	X(C_SignRecover) \
	X(C_VerifyInit) \
	X(C_Verify) \
	X(C_VerifyUpdate) \
	X(C_VerifyFinal) \
	X(C_VerifyRecoverInit) \
	X(C_VerifyRecover) \
	X(C_DigestEncryptUpdate) \
	X(C_DecryptDigestUpdate) \
	X(C_SignEncryptUpdate) \
	X(C_DecryptVerifyUpdate) \
	X(C_GenerateKey) \
	X(C_GenerateKeyPair) \
	X(C_WrapKey) \
	X(C_UnwrapKey) \
	X(C_DeriveKey) \
	X(C_SeedRandom) \
	X(C_GenerateRandom) \
	X(C_GetFunctionStatus) \
	X(C_CancelFunction) \
	X(C_WaitForSlotEvent)
/* clang-format on */

/*
 * The functions forwarded without a change: name, parameters, arguments.
 * The others (C_Initialize, C_Finalize, C_GetFunctionList, C_GetSlotList,
 * C_GetSlotInfo, C_GetTokenInfo, C_OpenSession, C_Login) are written out.
 */
/* clang-format off */
#define PLAIN_FUNCTIONS(F) \
	F(C_GetInfo, (CK_INFO_PTR info), (info)) \
	F(C_GetMechanismList, (CK_SLOT_ID slot, CK_MECHANISM_TYPE_PTR list, \
	    CK_ULONG_PTR count), (slot, list, count)) \
	F(C_GetMechanismInfo, (CK_SLOT_ID slot, CK_MECHANISM_TYPE type, \
	    CK_MECHANISM_INFO_PTR info), (slot, type, info)) \
	F(C_InitToken, (CK_SLOT_ID slot, CK_UTF8CHAR_PTR pin, CK_ULONG pin_len, \
	    CK_UTF8CHAR_PTR label), (slot, pin, pin_len, label)) \
	F(C_InitPIN, (CK_SESSION_HANDLE s, CK_UTF8CHAR_PTR pin, \
	    CK_ULONG pin_len), (s, pin, pin_len)) \
	F(C_SetPIN, (CK_SESSION_HANDLE s, CK_UTF8CHAR_PTR old_pin, \
	    CK_ULONG old_len, CK_UTF8CHAR_PTR new_pin, CK_ULONG new_len), \
	    (s, old_pin, old_len, new_pin, new_len)) \
	F(C_CloseSession, (CK_SESSION_HANDLE s), (s)) \
	F(C_CloseAllSessions, (CK_SLOT_ID slot), (slot)) \
	F(C_GetSessionInfo, (CK_SESSION_HANDLE s, CK_SESSION_INFO_PTR info), \
	    (s, info)) \
	F(C_GetOperationState, (CK_SESSION_HANDLE s, CK_BYTE_PTR state, \
	    CK_ULONG_PTR state_len), (s, state, state_len)) \
	F(C_SetOperationState, (CK_SESSION_HANDLE s, CK_BYTE_PTR state, \
	    CK_ULONG state_len, CK_OBJECT_HANDLE enc_key, \
	    CK_OBJECT_HANDLE auth_key), \
	    (s, state, state_len, enc_key, auth_key)) \
	F(C_Logout, (CK_SESSION_HANDLE s), (s)) \
	F(C_CreateObject, (CK_SESSION_HANDLE s, CK_ATTRIBUTE_PTR t, \
	    CK_ULONG n, CK_OBJECT_HANDLE_PTR obj), (s, t, n, obj)) \
	F(C_CopyObject, (CK_SESSION_HANDLE s, CK_OBJECT_HANDLE obj, \
	    CK_ATTRIBUTE_PTR t, CK_ULONG n, CK_OBJECT_HANDLE_PTR new_obj), \
	    (s, obj, t, n, new_obj)) \
	F(C_DestroyObject, (CK_SESSION_HANDLE s, CK_OBJECT_HANDLE obj), \
	    (s, obj)) \
	F(C_GetObjectSize, (CK_SESSION_HANDLE s, CK_OBJECT_HANDLE obj, \
	    CK_ULONG_PTR size), (s, obj, size)) \
	F(C_GetAttributeValue, (CK_SESSION_HANDLE s, CK_OBJECT_HANDLE obj, \
	    CK_ATTRIBUTE_PTR t, CK_ULONG n), (s, obj, t, n)) \
	F(C_SetAttributeValue, (CK_SESSION_HANDLE s, CK_OBJECT_HANDLE obj, \
	    CK_ATTRIBUTE_PTR t, CK_ULONG n), (s, obj, t, n)) \
	F(C_FindObjectsInit, (CK_SESSION_HANDLE s, CK_ATTRIBUTE_PTR t, \
	    CK_ULONG n), (s, t, n)) \
	F(C_FindObjects, (CK_SESSION_HANDLE s, CK_OBJECT_HANDLE_PTR obj, \
	    CK_ULONG max, CK_ULONG_PTR count), (s, obj, max, count)) \
	F(C_FindObjectsFinal, (CK_SESSION_HANDLE s), (s)) \
	F(C_EncryptInit, (CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, \
	    CK_OBJECT_HANDLE key), (s, m, key)) \
	F(C_Encrypt, (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len, \
	    CK_BYTE_PTR out, CK_ULONG_PTR out_len), \
	    (s, in, in_len, out, out_len)) \
	F(C_EncryptUpdate, (CK_SESSION_HANDLE s, CK_BYTE_PTR in, \
	    CK_ULONG in_len, CK_BYTE_PTR out, CK_ULONG_PTR out_len), \
	    (s, in, in_len, out, out_len)) \
	F(C_EncryptFinal, (CK_SESSION_HANDLE s, CK_BYTE_PTR out, \
	    CK_ULONG_PTR out_len), (s, out, out_len)) \
	F(C_DecryptInit, (CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, \
	    CK_OBJECT_HANDLE key), (s, m, key)) \
	F(C_Decrypt, (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len, \
	    CK_BYTE_PTR out, CK_ULONG_PTR out_len), \
	    (s, in, in_len, out, out_len)) \
	F(C_DecryptUpdate, (CK_SESSION_HANDLE s, CK_BYTE_PTR in, \
	    CK_ULONG in_len, CK_BYTE_PTR out, CK_ULONG_PTR out_len), \
	    (s, in, in_len, out, out_len)) \
	F(C_DecryptFinal, (CK_SESSION_HANDLE s, CK_BYTE_PTR out, \
	    CK_ULONG_PTR out_len), (s, out, out_len)) \
	F(C_DigestInit, (CK_SESSION_HANDLE s, CK_MECHANISM_PTR m), (s, m)) \
	F(C_Digest, (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len, \
	    CK_BYTE_PTR out, CK_ULONG_PTR out_len), \
	    (s, in, in_len, out, out_len)) \
	F(C_DigestUpdate, (CK_SESSION_HANDLE s, CK_BYTE_PTR in, \
	    CK_ULONG in_len), (s, in, in_len)) \
	F(C_DigestKey, (CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key), (s, key)) \
	F(C_DigestFinal, (CK_SESSION_HANDLE s, CK_BYTE_PTR out, \
	    CK_ULONG_PTR out_len), (s, out, out_len)) \
	F(C_SignInit, (CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, \
	    CK_OBJECT_HANDLE key), (s, m, key)) \
	F(C_Sign, (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len, \
	    CK_BYTE_PTR sig, CK_ULONG_PTR sig_len), \
	    (s, in, in_len, sig, sig_len)) \
	F(C_SignUpdate, (CK_SESSION_HANDLE s, CK_BYTE_PTR in, \
	    CK_ULONG in_len), (s, in, in_len)) \
	F(C_SignFinal, (CK_SESSION_HANDLE s, CK_BYTE_PTR sig, \
	    CK_ULONG_PTR sig_len), (s, sig, sig_len)) \
	F(C_SignRecoverInit, (CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, \
	    CK_OBJECT_HANDLE key), (s, m, key)) \
	F(C_SignRecover, (CK_SESSION_HANDLE s, CK_BYTE_PTR in, \
	    CK_ULONG in_len, CK_BYTE_PTR sig, CK_ULONG_PTR sig_len), \
	    (s, in, in_len, sig, sig_len)) \
	F(C_VerifyInit, (CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, \
	    CK_OBJECT_HANDLE key), (s, m, key)) \
	F(C_Verify, (CK_SESSION_HANDLE s, CK_BYTE_PTR in, CK_ULONG in_len, \
	    CK_BYTE_PTR sig, CK_ULONG sig_len), \
	    (s, in, in_len, sig, sig_len)) \
	F(C_VerifyUpdate, (CK_SESSION_HANDLE s, CK_BYTE_PTR in, \
	    CK_ULONG in_len), (s, in, in_len)) \
	F(C_VerifyFinal, (CK_SESSION_HANDLE s, CK_BYTE_PTR sig, \
	    CK_ULONG sig_len), (s, sig, sig_len)) \
	F(C_VerifyRecoverInit, (CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, \
	    CK_OBJECT_HANDLE key), (s, m, key)) \
	F(C_VerifyRecover, (CK_SESSION_HANDLE s, CK_BYTE_PTR sig, \
	    CK_ULONG sig_len, CK_BYTE_PTR out, CK_ULONG_PTR out_len), \
	    (s, sig, sig_len, out, out_len)) \
	F(C_DigestEncryptUpdate, (CK_SESSION_HANDLE s, CK_BYTE_PTR in, \
	    CK_ULONG in_len, CK_BYTE_PTR out, CK_ULONG_PTR out_len), \
	    (s, in, in_len, out, out_len)) \
	F(C_DecryptDigestUpdate, (CK_SESSION_HANDLE s, CK_BYTE_PTR in, \
	    CK_ULONG in_len, CK_BYTE_PTR out, CK_ULONG_PTR out_len), \
	    (s, in, in_len, out, out_len)) \
	F(C_SignEncryptUpdate, (CK_SESSION_HANDLE s, CK_BYTE_PTR in, \
	    CK_ULONG in_len, CK_BYTE_PTR out, CK_ULONG_PTR out_len), \
	    (s, in, in_len, out, out_len)) \
	F(C_DecryptVerifyUpdate, (CK_SESSION_HANDLE s, CK_BYTE_PTR in, \
	    CK_ULONG in_len, CK_BYTE_PTR out, CK_ULONG_PTR out_len), \
	    (s, in, in_len, out, out_len)) \
	F(C_GenerateKey, (CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, \
	    CK_ATTRIBUTE_PTR t, CK_ULONG n, CK_OBJECT_HANDLE_PTR key), \
	    (s, m, t, n, key)) \
	F(C_GenerateKeyPair, (CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, \
	    CK_ATTRIBUTE_PTR pub_t, CK_ULONG pub_n, CK_ATTRIBUTE_PTR priv_t, \
	    CK_ULONG priv_n, CK_OBJECT_HANDLE_PTR pub, \
	    CK_OBJECT_HANDLE_PTR priv), \
	    (s, m, pub_t, pub_n, priv_t, priv_n, pub, priv)) \
	F(C_WrapKey, (CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, \
	    CK_OBJECT_HANDLE wrapping, CK_OBJECT_HANDLE key, \
	    CK_BYTE_PTR out, CK_ULONG_PTR out_len), \
	    (s, m, wrapping, key, out, out_len)) \
	F(C_UnwrapKey, (CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, \
	    CK_OBJECT_HANDLE unwrapping, CK_BYTE_PTR in, CK_ULONG in_len, \
	    CK_ATTRIBUTE_PTR t, CK_ULONG n, CK_OBJECT_HANDLE_PTR key), \
	    (s, m, unwrapping, in, in_len, t, n, key)) \
	F(C_DeriveKey, (CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, \
	    CK_OBJECT_HANDLE base, CK_ATTRIBUTE_PTR t, CK_ULONG n, \
	    CK_OBJECT_HANDLE_PTR key), (s, m, base, t, n, key)) \
	F(C_SeedRandom, (CK_SESSION_HANDLE s, CK_BYTE_PTR seed, \
	    CK_ULONG seed_len), (s, seed, seed_len)) \
	F(C_GenerateRandom, (CK_SESSION_HANDLE s, CK_BYTE_PTR out, \
	    CK_ULONG out_len), (s, out, out_len)) \
	F(C_GetFunctionStatus, (CK_SESSION_HANDLE s), (s)) \
	F(C_CancelFunction, (CK_SESSION_HANDLE s), (s)) \
	F(C_WaitForSlotEvent, (CK_FLAGS flags, CK_SLOT_ID_PTR slot, \
	    CK_VOID_PTR reserved), (flags, slot, reserved))
/* clang-format on */

#define FN_ENUM(name) FN_##name,
enum fn { ALL_FUNCTIONS(FN_ENUM) FN_COUNT, FN_ANY = FN_COUNT };

#define FN_NAME(name) #name,
static const char *const fn_names[FN_COUNT] = { ALL_FUNCTIONS(FN_NAME) };

#define NAMED(x)      \
	{             \
#x, x \
	}
static const struct {
	const char *name;
	CK_RV value;
} rv_names[] = {
	NAMED(CKR_OK),
	NAMED(CKR_HOST_MEMORY),
	NAMED(CKR_GENERAL_ERROR),
	NAMED(CKR_FUNCTION_FAILED),
	NAMED(CKR_ARGUMENTS_BAD),
	NAMED(CKR_CANT_LOCK),
	NAMED(CKR_DATA_INVALID),
	NAMED(CKR_DEVICE_ERROR),
	NAMED(CKR_DEVICE_MEMORY),
	NAMED(CKR_DEVICE_REMOVED),
	NAMED(CKR_FUNCTION_CANCELED),
	NAMED(CKR_FUNCTION_NOT_SUPPORTED),
	NAMED(CKR_KEY_HANDLE_INVALID),
	NAMED(CKR_MECHANISM_INVALID),
	NAMED(CKR_OBJECT_HANDLE_INVALID),
	NAMED(CKR_OPERATION_ACTIVE),
	NAMED(CKR_OPERATION_NOT_INITIALIZED),
	NAMED(CKR_PIN_INCORRECT),
	NAMED(CKR_PIN_EXPIRED),
	NAMED(CKR_PIN_LOCKED),
	NAMED(CKR_SESSION_CLOSED),
	NAMED(CKR_SESSION_COUNT),
	NAMED(CKR_SESSION_HANDLE_INVALID),
	NAMED(CKR_SESSION_READ_ONLY),
	NAMED(CKR_SIGNATURE_INVALID),
	NAMED(CKR_TEMPLATE_INCOMPLETE),
	NAMED(CKR_TEMPLATE_INCONSISTENT),
	NAMED(CKR_TOKEN_NOT_PRESENT),
	NAMED(CKR_TOKEN_NOT_RECOGNIZED),
	NAMED(CKR_TOKEN_WRITE_PROTECTED),
	NAMED(CKR_USER_ALREADY_LOGGED_IN),
	NAMED(CKR_USER_NOT_LOGGED_IN),
	NAMED(CKR_USER_PIN_NOT_INITIALIZED),
	NAMED(CKR_BUFFER_TOO_SMALL),
	NAMED(CKR_CRYPTOKI_NOT_INITIALIZED),
	NAMED(CKR_CRYPTOKI_ALREADY_INITIALIZED),
};

static const struct {
	const char *name;
	CK_FLAGS value;
} flag_names[] = {
	NAMED(CKF_WRITE_PROTECTED),
	NAMED(CKF_LOGIN_REQUIRED),
	NAMED(CKF_USER_PIN_INITIALIZED),
	NAMED(CKF_PROTECTED_AUTHENTICATION_PATH),
	NAMED(CKF_TOKEN_INITIALIZED),
	NAMED(CKF_USER_PIN_COUNT_LOW),
	NAMED(CKF_USER_PIN_FINAL_TRY),
	NAMED(CKF_USER_PIN_LOCKED),
	NAMED(CKF_USER_PIN_TO_BE_CHANGED),
	NAMED(CKF_SO_PIN_COUNT_LOW),
	NAMED(CKF_SO_PIN_FINAL_TRY),
	NAMED(CKF_SO_PIN_LOCKED),
	NAMED(CKF_SO_PIN_TO_BE_CHANGED),
};

struct fault {
	enum fn fn; /* or FN_ANY */
	uint64_t at; /* call number, from 1 */
	bool and_later; /* "N+" */
	CK_RV rv;
};

struct config {
	char *module;
	char *log;
	struct fault faults[MAX_FAULTS];
	size_t n_faults;
	CK_FLAGS flags_add;
	CK_FLAGS flags_remove;
	bool token_absent;
	char *login_pin_file; /* test only: log in after C_OpenSession */
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct config conf;
static struct stat conf_stat; /* of the file conf was read from */
static uint64_t calls[FN_COUNT];
static void *real_handle;
static char *real_path;
static CK_FUNCTION_LIST_PTR real_list; /* of real_handle */
static CK_FUNCTION_LIST_PTR
    real; /* real_list between Initialize and Finalize */

static void
config_clear(struct config *c)
{
	free(c->module);
	free(c->log);
	free(c->login_pin_file);
	memset(c, 0, sizeof(*c));
}

static char *
trim(char *s)
{
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s &&
	    (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' ||
		end[-1] == '\r'))
		*--end = '\0';
	return s;
}

/* "0x" followed by 1 to 16 hex digits. */
static bool
parse_hex(const char *s, CK_RV *out)
{
	CK_RV v = 0;
	size_t i;

	if (s[0] != '0' || (s[1] != 'x' && s[1] != 'X') || s[2] == '\0' ||
	    strlen(s + 2) > sizeof(CK_RV) * 2)
		return false;
	for (i = 2; s[i] != '\0'; i++) {
		char c = s[i];
		unsigned int d;

		if (c >= '0' && c <= '9')
			d = (unsigned int)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned int)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			d = (unsigned int)(c - 'A' + 10);
		else
			return false;
		v = (v << 4) | d;
	}
	*out = v;
	return true;
}

static bool
parse_rv(const char *s, CK_RV *out)
{
	size_t i;

	for (i = 0; i < sizeof(rv_names) / sizeof(rv_names[0]); i++) {
		if (strcmp(s, rv_names[i].name) == 0) {
			*out = rv_names[i].value;
			return true;
		}
	}
	return parse_hex(s, out);
}

/*
 * Returns the next blank-separated word of *p (NUL-terminated in place)
 * and moves *p past it, or NULL at the end.
 */
static char *
next_word(char **p)
{
	char *s = *p, *word;

	s += strspn(s, " \t");
	if (*s == '\0')
		return NULL;
	word = s;
	s += strcspn(s, " \t");
	if (*s != '\0')
		*s++ = '\0';
	*p = s;
	return word;
}

/* "C_Name N[+] RV" */
static const char *
parse_fail(char *value, struct config *c)
{
	struct fault *f;
	char *name, *count, *rv;
	size_t len, i;

	name = next_word(&value);
	count = next_word(&value);
	rv = next_word(&value);
	if (name == NULL || count == NULL || rv == NULL ||
	    next_word(&value) != NULL)
		return "expected 'fail = C_Function N[+] CKR_...'";
	if (c->n_faults == MAX_FAULTS)
		return "too many fail lines";
	f = &c->faults[c->n_faults];
	if (strcmp(name, "*") == 0) {
		f->fn = FN_ANY;
	} else {
		for (i = 0; i < FN_COUNT; i++) {
			if (strcmp(name, fn_names[i]) == 0)
				break;
		}
		if (i == FN_COUNT)
			return "unknown PKCS#11 function";
		f->fn = (enum fn)i;
	}
	len = strlen(count);
	f->and_later = len > 0 && count[len - 1] == '+';
	if (f->and_later)
		count[len - 1] = '\0';
	if (p11e_num_parse_u64(count, 1, UINT64_MAX, &f->at) != P11E_OK)
		return "bad call number (1, 2, ... or 2+)";
	if (!parse_rv(rv, &f->rv))
		return "unknown CKR_ value (use a CKR_ name or 0x...)";
	c->n_faults++;
	return NULL;
}

/* "+CKF_A -CKF_B ..." */
static const char *
parse_flags(char *value, struct config *c)
{
	char *word;
	size_t i;

	while ((word = next_word(&value)) != NULL) {
		if (word[0] != '+' && word[0] != '-')
			return "each flag needs a + or - prefix";
		for (i = 0; i < sizeof(flag_names) / sizeof(flag_names[0]);
		     i++) {
			if (strcmp(word + 1, flag_names[i].name) == 0)
				break;
		}
		if (i == sizeof(flag_names) / sizeof(flag_names[0]))
			return "unknown token flag";
		if (word[0] == '+') {
			c->flags_add |= flag_names[i].value;
			c->flags_remove &= ~flag_names[i].value;
		} else {
			c->flags_remove |= flag_names[i].value;
			c->flags_add &= ~flag_names[i].value;
		}
	}
	return NULL;
}

static const char *
parse_line(char *line, struct config *c)
{
	char *eq, *key, *value;

	eq = strchr(line, '=');
	if (eq == NULL)
		return "expected 'name = value'";
	*eq = '\0';
	key = trim(line);
	value = trim(eq + 1);
	if (strcmp(key, "module") == 0) {
		free(c->module);
		if ((c->module = strdup(value)) == NULL)
			return "out of memory";
	} else if (strcmp(key, "log") == 0) {
		free(c->log);
		if ((c->log = strdup(value)) == NULL)
			return "out of memory";
	} else if (strcmp(key, "login-pin-file") == 0) {
		free(c->login_pin_file);
		if ((c->login_pin_file = strdup(value)) == NULL)
			return "out of memory";
	} else if (strcmp(key, "fail") == 0) {
		return parse_fail(value, c);
	} else if (strcmp(key, "token-flags") == 0) {
		return parse_flags(value, c);
	} else if (strcmp(key, "token-absent") == 0) {
		int yes;

		if (p11e_num_parse_bool(value, &yes) != P11E_OK)
			return "expected yes or no";
		c->token_absent = yes != 0;
	} else {
		return "unknown directive";
	}
	return NULL;
}

/*
 * Reads P11FAULT_CONF into *c (cleared first) and its stat into *st.
 * Errors are printed as "p11fault: FILE:LINE: ..." and return false.
 */
static bool
config_read(struct config *c, struct stat *st)
{
	const char *path = getenv("P11FAULT_CONF");
	char line[MAX_LINE];
	const char *msg;
	unsigned int lineno = 0;
	bool ok = false;
	FILE *f;

	memset(c, 0, sizeof(*c));
	memset(st, 0, sizeof(*st));
	if (path == NULL || path[0] == '\0')
		return true;
	if ((f = fopen(path, "re")) == NULL) {
		fprintf(stderr, "p11fault: %s: %s\n", path, strerror(errno));
		return false;
	}
	if (fstat(fileno(f), st) == -1) {
		fprintf(stderr, "p11fault: %s: %s\n", path, strerror(errno));
		goto out;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		char *p;

		lineno++;
		if (strchr(line, '\n') == NULL && !feof(f)) {
			fprintf(stderr, "p11fault: %s:%u: line too long\n",
			    path, lineno);
			goto out;
		}
		p = trim(line);
		if (*p == '\0' || *p == '#')
			continue;
		if ((msg = parse_line(p, c)) != NULL) {
			fprintf(
			    stderr, "p11fault: %s:%u: %s\n", path, lineno, msg);
			goto out;
		}
	}
	if (ferror(f)) {
		fprintf(stderr, "p11fault: %s: read error\n", path);
		goto out;
	}
	ok = true;
out:
	fclose(f);
	if (!ok)
		config_clear(c);
	return ok;
}

/* Re-reads the file if it changed; lock held.  False: keep old, fail. */
static bool
config_refresh(void)
{
	const char *path = getenv("P11FAULT_CONF");
	struct config fresh;
	struct stat st, fresh_st;

	if (path == NULL || path[0] == '\0' || stat(path, &st) == -1)
		return true; /* XXX a vanished file keeps the last faults */
	if (st.st_ino == conf_stat.st_ino && st.st_dev == conf_stat.st_dev &&
	    st.st_size == conf_stat.st_size &&
	    st.st_mtim.tv_sec == conf_stat.st_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == conf_stat.st_mtim.tv_nsec)
		return true;
	if (!config_read(&fresh, &fresh_st))
		return false;
	config_clear(&conf);
	conf = fresh;
	conf_stat = fresh_st;
	return true;
}

static void
log_call(enum fn fn, CK_RV rv, bool injected, const char *extra)
{
	char line[256];
	int fd, n;

	if (conf.log == NULL)
		return;
	n = snprintf(line, sizeof(line), "%s rv=0x%08lx%s%s%s\n", fn_names[fn],
	    (unsigned long)rv, extra != NULL ? " " : "",
	    extra != NULL ? extra : "", injected ? " injected" : "");
	if (n < 0 || (size_t)n >= sizeof(line))
		return;
	fd = open(conf.log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd == -1)
		return;
	/* One write per line: lines of concurrent callers do not mix. */
	(void)!write(fd, line, (size_t)n);
	close(fd);
}

/*
 * Counts a call of fn and decides whether it goes to the real module.
 * Returns true with *rv set when it must not (fault, not initialised or
 * a broken configuration).
 */
static bool
enter(enum fn fn, CK_RV *rv)
{
	bool stop = false;
	size_t i;

	pthread_mutex_lock(&lock);
	if (real == NULL) {
		*rv = CKR_CRYPTOKI_NOT_INITIALIZED;
		stop = true;
		goto out;
	}
	if (!config_refresh()) {
		*rv = CKR_GENERAL_ERROR;
		stop = true;
		goto out;
	}
	calls[fn]++;
	for (i = 0; i < conf.n_faults; i++) {
		const struct fault *f = &conf.faults[i];

		if (f->fn != fn &&
		    (f->fn != FN_ANY || fn == FN_C_Initialize ||
			fn == FN_C_Finalize || fn == FN_C_GetFunctionList))
			continue;
		if (calls[fn] == f->at || (f->and_later && calls[fn] > f->at)) {
			*rv = f->rv;
			stop = true;
			break;
		}
	}
out:
	pthread_mutex_unlock(&lock);
	return stop;
}

static CK_RV
leave(enum fn fn, CK_RV rv, bool injected, const char *extra)
{
	pthread_mutex_lock(&lock);
	log_call(fn, rv, injected, extra);
	pthread_mutex_unlock(&lock);
	return rv;
}

static bool
token_absent(void)
{
	bool absent;

	pthread_mutex_lock(&lock);
	absent = conf.token_absent;
	pthread_mutex_unlock(&lock);
	return absent;
}

#define FORWARD(name, params, args)                              \
	static CK_RV shim_##name params                          \
	{                                                        \
		CK_RV rv;                                        \
		if (enter(FN_##name, &rv))                       \
			return leave(FN_##name, rv, true, NULL); \
		rv = real->name args;                            \
		return leave(FN_##name, rv, false, NULL);        \
	}
PLAIN_FUNCTIONS(FORWARD)

static const char *
module_path(void)
{
	const char *candidates[] = { P11FAULT_DEFAULT_MODULE,
		"/usr/lib/softhsm/libsofthsm2.so",
		"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
		"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
		"/usr/lib64/pkcs11/libsofthsm2.so",
		"/usr/local/lib/softhsm/libsofthsm2.so" };
	size_t i;

	if (conf.module != NULL)
		return conf.module;
	for (i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++) {
		if (access(candidates[i], R_OK) == 0)
			return candidates[i];
	}
	return candidates[0];
}

/* Loads the real module; lock held. */
static CK_RV
load_real(void)
{
	CK_C_GetFunctionList get_list;
	const char *path = module_path();
	CK_FUNCTION_LIST_PTR list = NULL;
	CK_RV rv;

	if (real_handle != NULL && strcmp(real_path, path) == 0)
		return CKR_OK;
	if (real_handle != NULL) {
		real_list = NULL;
		dlclose(real_handle);
		real_handle = NULL;
		free(real_path);
		real_path = NULL;
	}
	if ((real_handle = dlopen(path, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		fprintf(stderr, "p11fault: %s\n", dlerror());
		return CKR_GENERAL_ERROR;
	}
	get_list =
	    (CK_C_GetFunctionList)dlsym(real_handle, "C_GetFunctionList");
	if (get_list == NULL || (rv = get_list(&list)) != CKR_OK ||
	    list == NULL) {
		fprintf(stderr, "p11fault: %s: no usable C_GetFunctionList\n",
		    path);
		dlclose(real_handle);
		real_handle = NULL;
		return CKR_GENERAL_ERROR;
	}
	if ((real_path = strdup(path)) == NULL) {
		dlclose(real_handle);
		real_handle = NULL;
		return CKR_HOST_MEMORY;
	}
	real_list = list;
	return CKR_OK;
}

static CK_RV
shim_C_Initialize(CK_VOID_PTR init_args)
{
	struct config fresh;
	struct stat st;
	CK_RV rv;

	pthread_mutex_lock(&lock);
	if (!config_read(&fresh, &st)) {
		pthread_mutex_unlock(&lock);
		return CKR_GENERAL_ERROR;
	}
	config_clear(&conf);
	conf = fresh;
	conf_stat = st;
	real = NULL;
	rv = load_real();
	if (rv == CKR_OK) {
		memset(calls, 0, sizeof(calls));
		real = real_list;
	}
	pthread_mutex_unlock(&lock);
	if (rv != CKR_OK)
		return rv;
	if (enter(FN_C_Initialize, &rv))
		return leave(FN_C_Initialize, rv, true, NULL);
	rv = real->C_Initialize(init_args);
	return leave(FN_C_Initialize, rv, false, NULL);
}

static CK_RV
shim_C_Finalize(CK_VOID_PTR reserved)
{
	CK_RV rv;

	if (enter(FN_C_Finalize, &rv))
		return leave(FN_C_Finalize, rv, true, NULL);
	rv = real->C_Finalize(reserved);
	if (rv == CKR_OK) {
		pthread_mutex_lock(&lock);
		real = NULL;
		pthread_mutex_unlock(&lock);
	}
	return leave(FN_C_Finalize, rv, false, NULL);
}

static CK_RV
shim_C_GetSlotList(CK_BBOOL present, CK_SLOT_ID_PTR list, CK_ULONG_PTR count)
{
	CK_RV rv;

	if (enter(FN_C_GetSlotList, &rv))
		return leave(FN_C_GetSlotList, rv, true, NULL);
	if (present && token_absent()) {
		if (count == NULL)
			return leave(
			    FN_C_GetSlotList, CKR_ARGUMENTS_BAD, true, NULL);
		*count = 0;
		return leave(FN_C_GetSlotList, CKR_OK, true, "absent");
	}
	rv = real->C_GetSlotList(present, list, count);
	return leave(FN_C_GetSlotList, rv, false, NULL);
}

static CK_RV
shim_C_GetSlotInfo(CK_SLOT_ID slot, CK_SLOT_INFO_PTR info)
{
	CK_RV rv;

	if (enter(FN_C_GetSlotInfo, &rv))
		return leave(FN_C_GetSlotInfo, rv, true, NULL);
	rv = real->C_GetSlotInfo(slot, info);
	if (rv == CKR_OK && token_absent()) {
		info->flags &= ~CKF_TOKEN_PRESENT;
		return leave(FN_C_GetSlotInfo, rv, true, "absent");
	}
	return leave(FN_C_GetSlotInfo, rv, false, NULL);
}

static CK_RV
shim_C_GetTokenInfo(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info)
{
	CK_FLAGS add, remove;
	CK_RV rv;

	if (enter(FN_C_GetTokenInfo, &rv))
		return leave(FN_C_GetTokenInfo, rv, true, NULL);
	if (token_absent())
		return leave(
		    FN_C_GetTokenInfo, CKR_TOKEN_NOT_PRESENT, true, "absent");
	rv = real->C_GetTokenInfo(slot, info);
	if (rv != CKR_OK)
		return leave(FN_C_GetTokenInfo, rv, false, NULL);
	pthread_mutex_lock(&lock);
	add = conf.flags_add;
	remove = conf.flags_remove;
	pthread_mutex_unlock(&lock);
	info->flags = (info->flags | add) & ~remove;
	return leave(FN_C_GetTokenInfo, rv, false,
	    add != 0 || remove != 0 ? "flags" : NULL);
}

/*
 * login-pin-file: logs the new session's token in with the PIN read
 * from the file, unless it is logged in already.  Test-only code.
 */
static void
auto_login(CK_SESSION_HANDLE s)
{
	CK_SESSION_INFO info;
	char path[MAX_LINE], pin[256], extra[64];
	size_t len = 0;
	ssize_t n;
	CK_RV rv;
	int fd;

	pthread_mutex_lock(&lock);
	path[0] = '\0';
	if (conf.login_pin_file != NULL)
		snprintf(path, sizeof(path), "%s", conf.login_pin_file);
	pthread_mutex_unlock(&lock);
	if (path[0] == '\0' || real->C_GetSessionInfo(s, &info) != CKR_OK ||
	    info.state == CKS_RO_USER_FUNCTIONS ||
	    info.state == CKS_RW_USER_FUNCTIONS)
		return;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		fprintf(stderr, "p11fault: %s: %s\n", path, strerror(errno));
		return;
	}
	while (len < sizeof(pin) - 1 &&
	    (n = read(fd, pin + len, sizeof(pin) - 1 - len)) > 0)
		len += (size_t)n;
	close(fd);
	pin[len] = '\0';
	len = strcspn(pin, "\r\n");
	rv = real->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)pin, len);
	explicit_bzero(pin, sizeof(pin));
	snprintf(
	    extra, sizeof(extra), "autologin pin_len=%lu", (unsigned long)len);
	(void)leave(FN_C_Login, rv, false, extra);
}

static CK_RV
shim_C_OpenSession(CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR app,
    CK_NOTIFY notify, CK_SESSION_HANDLE_PTR session)
{
	CK_RV rv;

	if (enter(FN_C_OpenSession, &rv))
		return leave(FN_C_OpenSession, rv, true, NULL);
	if (token_absent())
		return leave(
		    FN_C_OpenSession, CKR_TOKEN_NOT_PRESENT, true, "absent");
	rv = real->C_OpenSession(slot, flags, app, notify, session);
	if (rv == CKR_OK)
		auto_login(*session);
	return leave(FN_C_OpenSession, rv, false, NULL);
}

static CK_RV
shim_C_Login(CK_SESSION_HANDLE s, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin,
    CK_ULONG pin_len)
{
	char extra[48];
	CK_RV rv;
	bool injected;

	/* The PIN's length only: never a PIN byte. */
	snprintf(extra, sizeof(extra), "user=%lu pin_len=%lu",
	    (unsigned long)user, (unsigned long)pin_len);
	injected = enter(FN_C_Login, &rv);
	if (!injected)
		rv = real->C_Login(s, user, pin, pin_len);
	return leave(FN_C_Login, rv, injected, extra);
}

static CK_RV shim_C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list);

#define LIST_ENTRY(name) .name = shim_##name,
static CK_FUNCTION_LIST shim_list = { .version = { 2, 40 },
	ALL_FUNCTIONS(LIST_ENTRY) };

static CK_RV
shim_C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list)
{
	if (list == NULL)
		return CKR_ARGUMENTS_BAD;
	*list = &shim_list;
	return CKR_OK;
}

/* The only exported symbol (the module is built -fvisibility=hidden). */
__attribute__((visibility("default"))) CK_RV
C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list)
{
	return shim_C_GetFunctionList(list);
}
