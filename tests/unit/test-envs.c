/*
 * test-envs.c: package names for group environments (envs_package_ok) accepted and refused,
 * and the "envs" configuration object (mirrors, quotas) parsed and refused with the key named.
 */
#include <jansson.h>
#include <string.h>

#include "config.h"
#include "envs.h"
#include "tap.h"

static int
parse(const char *text, struct envs_config *c, char *why, size_t size)
{
	json_t *j = text ? json_loads(text, 0, NULL) : NULL;
	memset(c, 0, sizeof(*c));
	int r = envs_config_parse(j, c, why, size);
	json_decref(j);
	return r;
}

int
main(void)
{
	static const char *const good[] = {
	    "apt:ripgrep",
	    "apt:g++",
	    "apt:libc6-dev",
	    "npm:typescript",
	    "npm:@anthropic-ai/claude-code",
	    "pip:pandas",
	    "pip:Django",
	    "pip:zope.interface",
	    "apt:python3.11",
	};
	static const char *const bad[] = {
	    "ripgrep",    "apt:",          "apt:-o",      "apt:--config-file=/x",
	    "npm:../x",   "npm:a/b",       "npm:@/x",     "npm:@s/",
	    "npm:@s/a/b", "pip:a b",       "pip:.hidden", "apt:/etc/passwd",
	    "deb:x",      "pip:pandas==2", "apt:a;b",     "apt:a\nb",
	    "npm:-g",     "pip:a\tb",      "APT:x",       "apt:x$(id)",
	};
	for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++)
		ok(envs_package_ok(good[i]), "accepted: %s", good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		ok(!envs_package_ok(bad[i]), "refused: %s",
		   !bad[i][0]                ? "(empty)"
		   : strpbrk(bad[i], "\t\n") ? "(a tab or newline)"
		                             : bad[i]);
	char long_name[ENVS_NAME_MAX + 8] = "apt:";
	memset(long_name + 4, 'a', ENVS_NAME_MAX + 1);
	long_name[ENVS_NAME_MAX + 5] = '\0';
	ok(!envs_package_ok(long_name), "refused: a name longer than %d", ENVS_NAME_MAX);

	struct envs_config c;
	char why[256] = "";
	ok(parse(NULL, &c, why, sizeof(why)) == 0 && c.max_bytes == (2ULL << 30) &&
	       c.max_packages == 64 && c.build_seconds == 900 && !c.debian[0],
	   "no \"envs\": the defaults (2G, 64 packages, 900 s, public registries)");
	ok(parse("{\"mirrors\": {\"debian\": \"deb [trusted=yes] http://127.0.0.1:1/d ./\", "
	         "\"npm\": \"http://127.0.0.1:2/\", \"pypi\": \"https://m.example/simple/\"}, "
	         "\"max_size\": \"100M\", \"max_packages\": 5, \"build_timeout\": 60}",
	         &c, why, sizeof(why)) == 0 &&
	       c.max_bytes == (100ULL << 20) && c.max_packages == 5 && c.build_seconds == 60 &&
	       strcmp(c.npm, "http://127.0.0.1:2/") == 0,
	   "mirrors and quotas are read");
	static const struct {
		const char *text, *names;
	} refused[] = {
	    {"[]", "envs: expected an object"},
	    {"{\"mirror\": {}}", "envs.mirror: unknown key"},
	    {"{\"mirrors\": {\"apt\": \"x\"}}", "envs.mirrors.apt: unknown key"},
	    {"{\"mirrors\": {\"debian\": \"http://x/\"}}", "envs.mirrors.debian"},
	    {"{\"mirrors\": {\"npm\": \"ftp://x/\"}}", "envs.mirrors"},
	    {"{\"mirrors\": {\"pypi\": \"https://x/\\nAcquire::x\"}}", "envs.mirrors.pypi"},
	    {"{\"max_size\": \"lots\"}", "envs.max_size"},
	    {"{\"max_packages\": 0}", "envs.max_packages"},
	    {"{\"build_timeout\": \"9\"}", "envs.build_timeout"},
	};
	for (size_t i = 0; i < sizeof(refused) / sizeof(*refused); i++) {
		why[0] = '\0';
		int r = parse(refused[i].text, &c, why, sizeof(why));
		ok(r == -22 && strstr(why, refused[i].names), "refused: %s (%s)", refused[i].text,
		   why);
	}
	return tap_done();
}
