/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

/*
 * fuzz_config: any bytes as a configuration file.  A load either fails
 * with problems reported, or succeeds and every getter works.
 */

#include <stdint.h>
#include <stdlib.h>

#include "common/conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
count_problem(void *data, const char *file, unsigned int line, const char *msg)
{
	(void)file;
	(void)line;
	if (msg == NULL || msg[0] == '\0')
		abort();
	(*(unsigned int *)data)++;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct p11e_conf *conf = NULL;
	unsigned int problems = 0;
	enum p11e_err err;

	err = p11e_conf_load_buffer(p11e_agent_schema, "fuzz.conf", data, size,
	    count_problem, &problems, &conf);
	if (err == P11E_OK) {
		if (problems != 0 || conf == NULL)
			abort();
		(void)p11e_conf_get_str(conf, "agent", "state-dir");
		(void)p11e_conf_get_bool(conf, "cli", "autostart", true);
		(void)p11e_conf_sections(conf, "service", NULL, NULL);
	} else if (err == P11E_ERR_CONFIG) {
		if (problems == 0 || conf != NULL)
			abort();
	}
	p11e_conf_free(conf);
	return 0;
}
