/*
 * test-config.c: the daemon's configuration checked whole, as cases: each text either
 * parses, or fails with one line that names the key at fault (the README's promise: "an
 * error names the key"). Then the defaults a careful user relies on, and the README's
 * example.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "tap.h"

static const struct {
	const char *text;  /* the file, groups added when it has none ("G" below) */
	const char *error; /* NULL: valid; else a piece of the error line */
} cases[] = {
    {"{\"groups\": [{\"id\": \"main\", \"main\": true}]}", NULL},
    {"[]", "expected a JSON object"},
    {"{\"groups\": [{\"id\": \"main\"}], \"grops\": 1}", "grops: unknown key"},
    {"{}", "groups: at least one group"},
    {"{\"groups\": {}}", "groups: expected a list"},
    {"{\"groups\": [7]}", "groups[0]: expected an object"},
    {"{\"groups\": [{\"main\": true}]}", "groups[0].id: missing"},
    {"{\"groups\": [{\"id\": \"Main Group\"}]}", "groups[0].id: use lower-case"},
    {"{\"groups\": [{\"id\": \"../x\"}]}", "groups[0].id: use lower-case"},
    {"{\"groups\": [{\"id\": \"a\"}, {\"id\": \"a\"}]}", "groups[1].id: \"a\" is used twice"},
    {"{\"groups\": [{\"id\": \"a\", \"colour\": \"red\"}]}", "groups[0].colour: unknown key"},
    {"{\"groups\": [{\"id\": \"a\", \"main\": \"yes\"}]}", "groups[0].main: expected true"},
    {"{\"groups\": [{\"id\": \"a\", \"memory\": \"1K\"}]}", "groups[0].memory"},
    {"{\"groups\": [{\"id\": \"a\", \"memory\": \"256M\"}]}", NULL},
    {"{\"groups\": [{\"id\": \"a\", \"allow\": \"example.org\"}]}",
     "groups[0].allow: expected a list"},
    {"{\"groups\": [{\"id\": \"a\", \"allow\": [\"exa mple.org\"]}]}", "groups[0].allow[0]"},
    {"{\"groups\": [{\"id\": \"a\", \"allow\": [\"en.wikipedia.org\", \"api.x.org:8443\"]}]}",
     NULL},
    {"{\"groups\": [{\"id\": \"a\", \"mounts\": [{\"host\": \"rel\", \"path\": "
     "\"/workspace/r\"}]}]}",
     "groups[0].mounts[0].host"},
    {"{\"groups\": [{\"id\": \"a\", \"mounts\": [{\"host\": \"/srv/r\", \"path\": \"/etc\"}]}]}",
     "groups[0].mounts[0].path"},
    {"{\"groups\": [{\"id\": \"a\", \"mounts\": [{\"host\": \"/srv/r\", \"path\": "
     "\"/workspace/r\", "
     "\"rw\": 1}]}]}",
     "groups[0].mounts[0].rw"},
    {"{\"groups\": [{\"id\": \"a\", \"mounts\": [{\"host\": \"/srv/r\", \"path\": "
     "\"/workspace/r\"}]}]}",
     NULL},
    {"{\"groups\": [{\"id\": \"a\", \"home\": \"keep\"}]}", "groups[0].home"},
    {"{\"groups\": [{\"id\": \"a\", \"max_time\": 0}]}", "groups[0].max_time"},
    {"{\"groups\": [{\"id\": \"a\", \"max_time\": 86401}]}", "groups[0].max_time"},
    {"{\"groups\": [{\"id\": \"a\", \"folder_quota\": \"10K\"}]}", "folder_quota"},
    {"{\"data_dir\": \"relative/dir\", \"groups\": [{\"id\": \"a\"}]}",
     "data_dir: expected an absolute path"},
    {"{\"listen\": \"7878\", \"groups\": [{\"id\": \"a\"}]}", "listen: expected ADDRESS:PORT"},
    {"{\"listen\": \"127.0.0.1:99999\", \"groups\": [{\"id\": \"a\"}]}", "listen"},
    {"{\"listen\": \"127.0.0.1:7879\", \"groups\": [{\"id\": \"a\"}]}", NULL},
    {"{\"allow_remote\": \"no\", \"groups\": [{\"id\": \"a\"}]}", "allow_remote"},
    {"{\"max_concurrent\": 0, \"groups\": [{\"id\": \"a\"}]}", "max_concurrent"},
    {"{\"max_concurrent\": 257, \"groups\": [{\"id\": \"a\"}]}", "max_concurrent"},
    {"{\"model\": [], \"groups\": [{\"id\": \"a\"}]}", "model: expected an object"},
    {"{\"model\": {\"provider\": \"gemini\"}, \"groups\": [{\"id\": \"a\"}]}", "model.provider"},
    {"{\"model\": {\"base_url\": \"ftp://x\"}, \"groups\": [{\"id\": \"a\"}]}", "model.base_url"},
    {"{\"model\": {\"provider\": \"openai\", \"base_url\": \"http://127.0.0.1:11434\"}, "
     "\"groups\": [{\"id\": \"a\"}]}",
     NULL},
    {"{\"limits\": 5, \"groups\": [{\"id\": \"a\"}]}", "limits: expected an object"},
    {"{\"limits\": {\"queue_per_group\": 0}, \"groups\": [{\"id\": \"a\"}]}",
     "limits.queue_per_group"},
    {"{\"limits\": {\"bogus\": 1}, \"groups\": [{\"id\": \"a\"}]}", "limits.bogus: unknown key"},
    {"{\"vm\": \"yes\", \"groups\": [{\"id\": \"a\"}]}", "vm: expected true"},
    {"{\"vm\": {\"accel\": \"xen\"}, \"groups\": [{\"id\": \"a\"}]}", "vm.accel"},
    {"{\"vm\": {\"memory\": \"64M\"}, \"groups\": [{\"id\": \"a\"}]}", "vm.memory"},
    {"{\"groups\": [{\"id\": \"a\", \"timezone\": 5}]}", "groups[0].timezone"},
    {"{\"groups\": [{\"id\": \"a\", \"timezone\": \"Mars/Olympus\"}]}",
     "groups[0].timezone: not a time zone"},
    {"{\"groups\": [{\"id\": \"a\", \"timezone\": \"Europe/Berlin\"}]}", NULL},
    {"{\"groups\": [{\"id\": \"a\", \"budget\": {\"runs\": 0}}]}", "groups[0].budget"},
    {"{\"groups\": [{\"id\": \"a\", \"budget\": {\"runs\": 10, \"tokens\": 100000}}]}", NULL},
    {"{\"groups\": [{\"id\": \"a\", \"approvers\": [\"cli\", \"telegram:42\", \"slack:U024BE7LH\", "
     "\"discord:80351110224678912\", \"matrix:@ana:example.org\", \"xmpp:ana@example.org\"]}]}",
     NULL},
    {"{\"groups\": [{\"id\": \"a\", \"approvers\": [\"email:ana@example.org\"]}]}",
     "groups[0].approvers[0]: email cannot approve"},
    {"{\"groups\": [{\"id\": \"a\", \"approvers\": [\"telegram:ana\"]}]}",
     "groups[0].approvers[0]"},
    {"{\"groups\": [{\"id\": \"a\", \"approvers\": [\"webhook:x\"]}]}", "groups[0].approvers[0]"},
    {"{\"groups\": [{\"id\": \"a\", \"approvers\": [\"slack:\"]}]}", "groups[0].approvers[0]"},
    {"{\"groups\": [{\"id\": \"a\", \"policy\": {\"tools\": [\"teleport\"]}}]}",
     "groups[0].policy"},
    /* Channels (channels-config.c). */
    {"{\"groups\": [{\"id\": \"a\"}], \"channels\": [{\"name\": \"tg\", \"kind\": \"telegram\", "
     "\"token_env\": \"T\", \"chats\": {\"1\": \"a\"}}]}",
     NULL},
    {"{\"groups\": [{\"id\": \"a\"}], \"channels\": {}}", "channels: expected a list"},
    {"{\"groups\": [{\"id\": \"a\"}], \"channels\": [{\"name\": \"T G\", \"kind\": \"x\"}]}",
     "channels[0].name: expected a name"},
    {"{\"groups\": [{\"id\": \"a\"}], \"channels\": [{\"name\": \"tg\"}]}",
     "channels[0].kind: expected a channel kind"},
    {"{\"groups\": [{\"id\": \"a\"}], \"channels\": [{\"name\": \"tg\", \"kind\": \"telegram\", "
     "\"chats\": {\"1\": \"nope\"}}]}",
     "channels[0].chats.1: expected the id of a configured group"},
    {"{\"groups\": [{\"id\": \"a\"}], \"channels\": [{\"name\": \"tg\", \"kind\": \"telegram\", "
     "\"token\": \"123:abc\"}]}",
     "channels[0]: a secret is never written here"},
    {"{\"groups\": [{\"id\": \"a\"}], \"channels\": [{\"name\": \"tg\", \"kind\": \"telegram\", "
     "\"token_file\": \"rel/tok\"}]}",
     "channels[0].token_file: expected an absolute path"},
    {"{\"groups\": [{\"id\": \"a\"}], \"channels\": [{\"name\": \"tg\", \"kind\": \"telegram\", "
     "\"token_env\": \"A=B\"}]}",
     "channels[0].token_env: expected a variable's name"},
    {"{\"groups\": [{\"id\": \"a\"}], \"channels\": [{\"name\": \"tg\", \"kind\": \"telegram\", "
     "\"base_url\": \"ftp://x\"}]}",
     "channels[0].base_url: expected http:// or https://"},
    {"{\"groups\": [{\"id\": \"a\"}], \"telegram\": {}, \"channels\": [{\"name\": "
     "\"telegram\", \"kind\": \"telegram\"}]}",
     "channels[0].name: \"telegram\" is used twice (the \"telegram\" object"},
    {"{\"groups\": [{\"id\": \"a\"}], \"telegram\": {\"chats\": {\"x1\": \"a\"}, \"tokn\": 1}}",
     "telegram.tokn: unknown key"},
};

int
main(void)
{
	struct daemon_config *c = calloc(1, sizeof(*c));
	if (!c)
		return 1;
	char why[512];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		why[0] = '\0';
		int r = config_parse(cases[i].text, c, why, sizeof(why));
		if (!cases[i].error)
			ok(r == 0, "valid: %s (%s)", cases[i].text, why);
		else
			ok(r < 0 && strstr(why, cases[i].error) && !strchr(why, '\n'),
			   "refused naming \"%s\": %s", cases[i].error, why);
		config_done(c);
		memset(c, 0, sizeof(*c));
	}

	/* What a careful user relies on without writing it. */
	int r =
	    config_parse("{\"groups\": [{\"id\": \"main\", \"main\": true}, {\"id\": \"fam\"}]}", c,
	                 why, sizeof(why));
	ok(r == 0, "two groups (%s)", why);
	ok(strcmp(c->listen_host, "127.0.0.1") == 0 && c->listen_port == 7878,
	   "default listen: 127.0.0.1:7878 (%s:%u)", c->listen_host, c->listen_port);
	ok(!c->allow_remote && config_listen_loopback(c), "loopback only by default");
	ok(c->max_concurrent == 4, "max_concurrent 4 (%u)", c->max_concurrent);
	ok(c->groups[1].folder_quota == CONFIG_FOLDER_QUOTA, "a group's folder quota: 1 GiB");
	ok(c->limits.task_min_interval == 60 && c->limits.tasks_per_group == 50,
	   "agents' tasks: at most every 60 s, 50 a group (%u, %u)", c->limits.task_min_interval,
	   c->limits.tasks_per_group);
	ok(c->limits.queue_per_group == 100 && c->limits.queue_total == 1000,
	   "queues: 100 a group, 1000 in all (%u, %u)", c->limits.queue_per_group,
	   c->limits.queue_total);
	ok(c->groups[0].main && !c->groups[1].main, "main only where said");
	ok(c->groups[1].n_allow == 0 && c->groups[1].n_mounts == 0,
	   "no egress and no extra mounts unless given");
	ok(!c->groups[1].agent_may_install && !c->groups[1].tasks_may_schedule,
	   "agents may not install packages or schedule from a task's run by default");
	ok(config_group(c, "fam") == &c->groups[1] && config_group(c, "nope") == NULL,
	   "groups found by id");
	config_done(c);
	memset(c, 0, sizeof(*c));

	/* The older "telegram" object is a channel named "telegram", with its defaults. */
	r = config_parse("{\"groups\": [{\"id\": \"fam\"}], \"telegram\": {\"chats\": {\"12345\": "
	                 "\"fam\"}}}",
	                 c, why, sizeof(why));
	const struct channel_config *tg = r == 0 ? config_channel(c, "telegram") : NULL;
	ok(tg && strcmp(tg->kind, "telegram") == 0 && tg->n_chats == 1 &&
	       strcmp(tg->chats[0].chat, "12345") == 0 && strcmp(tg->chats[0].group, "fam") == 0,
	   "\"telegram\": a channel named telegram, its chat for fam (%s)", why);
	ok(tg && strcmp(tg->token_env, "TELEGRAM_BOT_TOKEN") == 0 &&
	       strstr(tg->config, "\"base_url\":\"https://api.telegram.org\"") &&
	       !strstr(tg->config, "chats"),
	   "with the old defaults; its chats travel apart (%s)", tg ? tg->config : "");
	config_done(c);
	memset(c, 0, sizeof(*c));

	/* The default file the first start writes parses as it is. */
	char *text = config_default_text("/var/lib/clawbox-test");
	r = text ? config_parse(text, c, why, sizeof(why)) : -1;
	ok(r == 0 && strcmp(c->data_dir, "/var/lib/clawbox-test") == 0,
	   "the default configuration parses (%s)", why);
	free(text);
	config_done(c);
	free(c);
	return tap_done();
}
