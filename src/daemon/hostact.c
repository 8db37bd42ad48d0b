/*
 * hostact.c: see hostact.h. Every handler takes the asking group from the caller (the run's
 * record) and re-checks everything in the request: types, sizes, the target group against
 * the configuration, task ownership against the store.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "dbuf.h"
#include "fd-util.h"
#include "hostact.h"
#include "json-util.h"
#include "tasks.h"

struct verdict {
	bool ok;
	char text[1024];
};

static json_t *
decide(struct daemon *d, const char *group, const char *tool, const struct verdict *v)
{
	(void)store_audit(d->store, group, tool, v->ok ? "allow" : "deny", v->text);
	return v->ok ? json_pack("{s:b,s:s}", "ok", 1, "result", v->text)
	             : json_pack("{s:b,s:s}", "ok", 0, "error", v->text);
}

#define DENY(v, ...)                                                                               \
	do {                                                                                       \
		(v)->ok = false;                                                                   \
		snprintf((v)->text, sizeof((v)->text), __VA_ARGS__);                               \
		return;                                                                            \
	} while (0)
#define ALLOW(v, ...)                                                                              \
	do {                                                                                       \
		(v)->ok = true;                                                                    \
		snprintf((v)->text, sizeof((v)->text), __VA_ARGS__);                               \
		return;                                                                            \
	} while (0)

/* The group a request acts on: its own unless it names another, which only the main group
 * may. NULL after a denial in v. */
static const struct group_config *
target_group(struct daemon *d, const char *own, json_t *input, struct verdict *v)
{
	json_t *g = json_object_get(input, "group");
	const struct group_config *self = config_group(&d->cfg, own);
	if (!g || (json_is_string(g) && strcmp(json_string_value(g), own) == 0))
		return self;
	if (!json_is_string(g)) {
		v->ok = false;
		snprintf(v->text, sizeof(v->text), "group must be a group's id");
		return NULL;
	}
	if (!self || !self->main) {
		v->ok = false;
		snprintf(v->text, sizeof(v->text),
		         "only the main group may act on another group (asked for \"%.64s\")",
		         json_string_value(g));
		return NULL;
	}
	const struct group_config *t = config_group(&d->cfg, json_string_value(g));
	if (!t) {
		v->ok = false;
		snprintf(v->text, sizeof(v->text), "there is no group \"%.64s\"",
		         json_string_value(g));
	}
	return t;
}

static const char *
string_arg(json_t *input, const char *key, size_t max)
{
	json_t *v = json_object_get(input, key);
	if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > max ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return NULL;
	return json_string_value(v);
}

static void
send_message(struct daemon *d, const char *own, json_t *input, struct verdict *v)
{
	const char *text = string_arg(input, "text", DAEMON_TEXT_MAX);
	if (!text)
		DENY(v, "text must be a non-empty string of at most 32 KiB");
	const struct group_config *t = target_group(d, own, input, v);
	if (!t)
		return;
	int64_t id;
	if (store_message_out(d->store, t->id, "clawbox", text, &id) < 0)
		DENY(v, "the message could not be stored");
	ALLOW(v, "sent to %s (message %lld)", t->id, (long long)id);
}

/* Opens path (as the agent sees it: relative to its working folder, or under
 * /workspace/group) beneath the group's folder, never following a symlink or leaving it. */
static int
open_in_workspace(struct daemon *d, const char *group, const char *path, char *why, size_t size)
{
	static const char inside[] = "/workspace/group/";
	if (strncmp(path, inside, sizeof(inside) - 1) == 0)
		path += sizeof(inside) - 1;
	else if (path[0] == '/')
		return snprintf(why, size, "only files in the workspace can be sent"), -EPERM;
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/groups/%s", d->cfg.data_dir, group);
	_cleanup_close_ int dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return snprintf(why, size, "the workspace is unavailable"), -ENOENT;
	struct open_how how = {
	    .flags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY,
	    .resolve =
	        RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
	};
	int fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
	if (fd < 0) {
		int e = errno;
		snprintf(why, size, "%s: %s", path,
		         e == EXDEV || e == ELOOP ? "outside the workspace or through a symlink"
		                                  : strerror(e));
		return -e;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return snprintf(why, size, "%s: not a regular file", path), -EINVAL;
	}
	if ((uint64_t)st.st_size > HOSTACT_FILE_MAX) {
		close(fd);
		return snprintf(why, size, "%s: larger than 10 MiB", path), -EFBIG;
	}
	return fd;
}

static void
send_file(struct daemon *d, const char *own, json_t *input, uint64_t *budget, struct verdict *v)
{
	const char *path = string_arg(input, "path", 1024);
	if (!path)
		DENY(v, "path must be a non-empty string");
	const struct group_config *t = target_group(d, own, input, v);
	if (!t)
		return;
	char why[512];
	_cleanup_close_ int fd = open_in_workspace(d, own, path, why, sizeof(why));
	if (fd < 0)
		DENY(v, "%s", why);
	/* A copy in the daemon's own folder: what the agent changes later is not what was sent. */
	char dir[PATH_MAX], dest[PATH_MAX + 128];
	snprintf(dir, sizeof(dir), "%s/files", d->cfg.data_dir);
	(void)mkdir(dir, 0700);
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	unsigned char rnd[6];
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		DENY(v, "no randomness for a file name");
	snprintf(dest, sizeof(dest), "%s/%lld-%02x%02x%02x%02x%02x%02x-%.100s", dir,
	         (long long)time(NULL), rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], base);
	_cleanup_close_ int out =
	    open(dest, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (out < 0)
		DENY(v, "the file could not be kept");
	char buf[65536];
	uint64_t total = 0, limit = *budget < HOSTACT_FILE_MAX ? *budget : HOSTACT_FILE_MAX;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n > 0 && (total += (uint64_t)n) > limit) {
			unlink(dest);
			DENY(v, "%s: more than this run may still send (%llu bytes)", path,
			     (unsigned long long)limit);
		}
		if (n < 0 || (n > 0 && write_all(out, buf, (size_t)n) < 0)) {
			unlink(dest);
			DENY(v, "%s: could not be copied", path);
		}
		if (n == 0)
			break;
	}
	char text[512];
	snprintf(text, sizeof(text), "[file: %.100s, %llu bytes]", base, (unsigned long long)total);
	int64_t id;
	if (store_message_out(d->store, t->id, "clawbox", text, &id) < 0) {
		unlink(dest);
		DENY(v, "the message could not be stored");
	}
	char key[48];
	snprintf(key, sizeof(key), "file:%lld", (long long)id); /* the web app's download */
	(void)store_kv_set(d->store, key, strrchr(dest, '/') + 1);
	*budget -= total;
	ALLOW(v, "sent %s (%llu bytes) to %s", base, (unsigned long long)total, t->id);
}

static void
schedule_task(struct daemon *d, const char *own, json_t *input, struct verdict *v)
{
	const char *prompt = string_arg(input, "prompt", TASK_PROMPT_MAX);
	if (!prompt)
		DENY(v, "prompt must be a non-empty string of at most 16 KiB");
	const struct group_config *t = target_group(d, own, input, v);
	if (!t)
		return;
	char kind[8], spec[128], why[256], by[96];
	int64_t next;
	if (tasks_parse_schedule(input, t->timezone, daemon_now(d), kind, spec, sizeof(spec), &next,
	                         why, sizeof(why)) < 0)
		DENY(v, "%s", why);
	if (tasks_agent_may_schedule(d, own, t->id, kind, spec, t->timezone, why, sizeof(why)) < 0)
		DENY(v, "%s", why);
	snprintf(by, sizeof(by), "agent of %s", own);
	int64_t id;
	if (store_task_add(d->store, t->id, prompt, kind, spec, next, by, &id) < 0)
		DENY(v, "the task could not be stored");
	char desc[256];
	tasks_describe(kind, spec, t->timezone, desc, sizeof(desc));
	ALLOW(v, "task %lld for %s: %s", (long long)id, t->id, desc);
}

static void
list_tasks(struct daemon *d, const char *own, struct verdict *v)
{
	const struct group_config *self = config_group(&d->cfg, own);
	_cleanup_json_ json_t *tasks = NULL;
	if (store_tasks(d->store, self && self->main ? NULL : own, &tasks) < 0)
		DENY(v, "the tasks could not be read");
	struct dbuf b;
	dbuf_init(&b, sizeof(v->text) - 1);
	size_t i;
	json_t *t;
	json_array_foreach(tasks, i, t)
	{
		char desc[256];
		const struct group_config *g = config_group(&d->cfg, json_get_str(t, "group"));
		tasks_describe(json_get_str(t, "kind"), json_get_str(t, "spec"),
		               g ? g->timezone : "", desc, sizeof(desc));
		(void)dbuf_printf(&b, "#%lld %s [%s] %s: %.80s\n",
		                  (long long)json_integer_value(json_object_get(t, "id")),
		                  json_get_str(t, "group"), json_get_str(t, "status"), desc,
		                  json_get_str(t, "prompt"));
	}
	v->ok = true;
	snprintf(v->text, sizeof(v->text), "%s", b.len ? dbuf_str(&b) : "no tasks");
	dbuf_done(&b);
}

static void
change_task(struct daemon *d, const char *own, const char *tool, json_t *input, struct verdict *v)
{
	json_t *idv = json_object_get(input, "task_id");
	if (!json_is_integer(idv) || json_integer_value(idv) <= 0)
		DENY(v, "task_id must be a task's number");
	int64_t id = (int64_t)json_integer_value(idv);
	_cleanup_json_ json_t *task = NULL;
	if (store_task_get(d->store, id, &task) < 0)
		DENY(v, "there is no task %lld", (long long)id);
	const char *tgroup = json_get_str(task, "group"), *status = json_get_str(task, "status");
	const struct group_config *self = config_group(&d->cfg, own);
	/* Ownership from the store, never from the request. */
	if (strcmp(tgroup, own) != 0 && !(self && self->main))
		DENY(v, "task %lld belongs to another group", (long long)id);
	if (strcmp(status, "cancelled") == 0 || strcmp(status, "done") == 0)
		DENY(v, "task %lld is %s", (long long)id, status);
	int64_t next = json_integer_value(json_object_get(task, "next_run"));
	const char *new_status;
	if (strcmp(tool, "pause_task") == 0) {
		new_status = "paused";
	} else if (strcmp(tool, "cancel_task") == 0) {
		new_status = "cancelled";
	} else {
		new_status = "active";
		const struct group_config *g = config_group(&d->cfg, tgroup);
		const char *kind = json_get_str(task, "kind");
		if (strcmp(kind, "at") != 0)
			next = tasks_next(kind, json_get_str(task, "spec"), g ? g->timezone : "",
			                  daemon_now(d));
	}
	if (store_task_update(d->store, id, new_status, next) < 0)
		DENY(v, "the task could not be changed");
	ALLOW(v, "task %lld of %s is %s", (long long)id, tgroup, new_status);
}

json_t *
hostact_handle(struct daemon *d, const char *group, json_t *request, uint64_t *file_budget)
{
	struct verdict v = {0};
	const char *tool = json_get_str(request, "tool");
	json_t *input = json_object_get(request, "input");
	if (!tool || !json_is_object(input)) {
		v.ok = false;
		snprintf(v.text, sizeof(v.text), "a request is {\"tool\": NAME, \"input\": {...}}");
		return decide(d, group, tool ? tool : "(none)", &v);
	}
	if (strcmp(tool, "send_message") == 0)
		send_message(d, group, input, &v);
	else if (strcmp(tool, "send_file") == 0)
		send_file(d, group, input, file_budget, &v);
	else if (strcmp(tool, "schedule_task") == 0)
		schedule_task(d, group, input, &v);
	else if (strcmp(tool, "list_tasks") == 0)
		list_tasks(d, group, &v);
	else if (strcmp(tool, "pause_task") == 0 || strcmp(tool, "resume_task") == 0 ||
	         strcmp(tool, "cancel_task") == 0)
		change_task(d, group, tool, input, &v);
	else
		snprintf(v.text, sizeof(v.text), "no host action named \"%.64s\"", tool);
	char name[72];
	snprintf(name, sizeof(name), "%.64s", tool);
	return decide(d, group, name, &v);
}
