/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "agent/agent.h"
#include "agent/methods.h"
#include "common/conf.h"
#include "common/ipc.h"
#include "common/log.h"

typedef enum p11e_err (*method_fn)(
    struct p11e_agent *agent, json_t *params, json_t **result, char *detail);

enum p11e_err
p11e_params_check(
    json_t *params, const struct p11e_param *allowed, char *detail)
{
	const struct p11e_param *a;
	const char *key;
	json_t *v;

	for (a = allowed; a->name != NULL; a++) {
		v = json_object_get(params, a->name);
		if (v == NULL && a->required) {
			snprintf(detail, P11E_DETAIL_MAX,
			    "parameter '%s' is missing", a->name);
			return P11E_ERR_INVALID_PARAMETER;
		}
		if (v != NULL && json_typeof(v) != a->type) {
			snprintf(detail, P11E_DETAIL_MAX,
			    "parameter '%s' has the wrong type", a->name);
			return P11E_ERR_INVALID_PARAMETER;
		}
	}
	json_object_foreach(params, key, v)
	{
		for (a = allowed; a->name != NULL; a++) {
			if (strcmp(a->name, key) == 0)
				break;
		}
		if (a->name == NULL) {
			snprintf(detail, P11E_DETAIL_MAX,
			    "unknown parameter '%.64s'", key);
			return P11E_ERR_INVALID_PARAMETER;
		}
	}
	return P11E_OK;
}

static void
add_service(void *data, const char *name)
{
	(void)json_array_append_new(data, json_string(name));
}

/* GetInfo: who the agent is and what it was configured with. */
static enum p11e_err
get_info(
    struct p11e_agent *agent, json_t *params, json_t **result, char *detail)
{
	static const struct p11e_param none[] = { { NULL, 0, false } };
	struct p11e_conf *user = NULL;
	json_t *services;
	enum p11e_err err;

	if ((err = p11e_params_check(params, none, detail)) != P11E_OK)
		return err;
	services = json_array();
	if (services == NULL)
		return P11E_ERR_NOMEM;
	if (agent->conf != NULL &&
	    p11e_conf_sections(agent->conf, "service", add_service, services) !=
		json_array_size(services)) {
		json_decref(services);
		return P11E_ERR_NOMEM;
	}
	/* the user's services too (AddService); a broken one is skipped */
	if (agent->state_dir[0] != '\0' &&
	    p11e_agent_user_conf(agent, &user) == P11E_OK) {
		(void)p11e_conf_sections(
		    user, "service", add_service, services);
		p11e_conf_free(user);
	}
	*result = json_pack("{s:s, s:I, s:I, s:s, s:s, s:s, s:I, s:o}",
	    "version", PACKAGE_VERSION, "pid", (json_int_t)getpid(), "uid",
	    (json_int_t)geteuid(), "socket", agent->socket_path, "state_dir",
	    agent->state_dir, "config", agent->conf_path, "started",
	    (json_int_t)agent->started, "services", services);
	return *result ? P11E_OK : P11E_ERR_NOMEM;
}

static const struct {
	const char *name;
	method_fn fn;
	bool changes; /* may change credential records: reschedule */
} methods[] = {
	{ "GetInfo", get_info, false },
	{ "ListTokens", p11e_method_list_tokens, false },
	{ "ListObjects", p11e_method_list_objects, false },
	{ "GenerateKey", p11e_method_generate_key, false },
	{ "MakeCSR", p11e_method_make_csr, false },
	{ "ImportCertificates", p11e_method_import_certificates, false },
	{ "DeleteObjects", p11e_method_delete_objects, false },
	{ "AddService", p11e_method_add_service, true },
	{ "EnrollKey", p11e_method_enroll_key, true },
	{ "Enroll", p11e_method_enroll, true },
	{ "ListCredentials", p11e_method_list_credentials, false },
	{ "Renew", p11e_method_renew, true },
	{ "Doctor", p11e_method_doctor, false },
	{ "AdminLogin", p11e_method_admin_login, false },
	{ "AdminGrid", p11e_method_admin_grid, true },
	{ "AdminStatus", p11e_method_admin_status, false },
	{ "AdminUsers", p11e_method_admin_users, true },
	{ "AdminCertificate", p11e_method_admin_certificate, true },
	{ "AdminUserAdd", p11e_method_admin_user_add, true },
	{ "AdminUnlock", p11e_method_admin_unlock, true },
	{ "AdminOtp", p11e_method_admin_otp, true },
	{ "AdminAudit", p11e_method_admin_audit, true },
	{ "AdminLogout", p11e_method_admin_logout, false },
};

static enum p11e_err
call(struct p11e_agent *agent, json_t *req, json_t **result, char *detail)
{
	json_t *method, *params, *empty = NULL;
	enum p11e_err err = P11E_ERR_UNKNOWN_METHOD;
	const char *name;
	size_t i;

	method = json_object_get(req, "method");
	params = json_object_get(req, "parameters");
	if (!json_is_string(method)) {
		snprintf(detail, P11E_DETAIL_MAX,
		    "a call needs a \"method\" "
		    "string");
		return P11E_ERR_PROTOCOL;
	}
	if (params != NULL && !json_is_object(params)) {
		snprintf(detail, P11E_DETAIL_MAX,
		    "\"parameters\" must be an "
		    "object");
		return P11E_ERR_PROTOCOL;
	}
	if (params == NULL && (params = empty = json_object()) == NULL)
		return P11E_ERR_NOMEM;
	name = json_string_value(method);
	for (i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
		if (strcmp(methods[i].name, name) == 0) {
			p11e_debug(P11E_DEBUG_IPC, "call %s", name);
			/* only an Enroll takes what EnrollKey kept */
			if (methods[i].fn != p11e_method_enroll)
				p11e_agent_modules_drop();
			err = methods[i].fn(agent, params, result, detail);
			if (methods[i].changes)
				agent->reschedule = 1;
			break;
		}
	}
	json_decref(empty);
	return err;
}

enum p11e_err
p11e_agent_dispatch(struct p11e_agent *agent, const unsigned char *req,
    size_t len, struct p11e_buf *reply)
{
	char detail[P11E_DETAIL_MAX] = "";
	json_t *msg = NULL, *result = NULL, *out = NULL;
	enum p11e_err err, rerr = P11E_OK;

	if ((err = p11e_ipc_decode(req, len, &msg)) != P11E_OK)
		snprintf(detail, sizeof(detail),
		    "a message must be one JSON "
		    "object");
	else
		err = call(agent, msg, &result, detail);
	if (err == P11E_OK) {
		out = p11e_ipc_reply_new(result);
		result = NULL; /* transferred */
	} else {
		out = p11e_ipc_error_new(err, detail[0] ? detail : NULL);
	}
	if (out != NULL &&
	    (rerr = p11e_ipc_encode(out, reply)) == P11E_ERR_TOO_LARGE) {
		p11e_error("the reply to a call is over %d bytes: not sent",
		    P11E_IPC_MAX_REPLY);
		json_decref(out);
		err = P11E_ERR_TOO_LARGE;
		out = p11e_ipc_error_new(err,
		    "the reply would be larger than the agent sends "
		    "(16 MiB)");
		p11e_buf_reset(reply);
		if (out != NULL)
			rerr = p11e_ipc_encode(out, reply);
	}
	if (out == NULL || rerr != P11E_OK) {
		/* the smallest reply that needs no allocation */
		static const char nomem[] = "{\"error\":\"NoMemory\","
					    "\"parameters\":{\"code\":1}}";

		p11e_buf_reset(reply);
		(void)p11e_buf_append(reply, nomem, sizeof(nomem));
		err = P11E_ERR_NOMEM;
	}
	json_decref(out);
	json_decref(result);
	json_decref(msg);
	return err;
}
