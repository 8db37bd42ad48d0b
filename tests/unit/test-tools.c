/*
 * test-tools.c: the tool table and each tool, in a temporary folder: schema checks, what
 * each tool does and refuses, caps and their markers, the bash timeout killing a whole
 * process group, and HTML reduced to text.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "http.h"
#include "json-util.h"
#include "tap.h"
#include "tools.h"

static struct tool_env env;
static char result[TOOL_OUTPUT_MAX + 256];
static bool result_error;

/* Runs a tool with arguments given as JSON text; the output lands in result. */
static const char *
run(const char *name, const char *args)
{
	json_error_t e;
	_cleanup_json_ json_t *input = json_loads(args, 0, &e);
	struct tool_output out;
	tool_output_init(&out);
	tools_run(&env, name, input, input ? NULL : args, &out);
	snprintf(result, sizeof(result), "%s", tool_output_finish(&out));
	result_error = out.is_error;
	tool_output_done(&out);
	return result;
}

static bool
has(const char *needle)
{
	return strstr(result, needle) != NULL;
}

static void
test_schema(void)
{
	_cleanup_json_ json_t *schemas = tools_schemas(true);
	ok(json_array_size(schemas) == 15, "fifteen tools in the table (eight host actions)");
	size_t i, bad = 0;
	json_t *t;
	json_array_foreach(schemas, i, t)
	{
		json_t *s = json_object_get(t, "input_schema");
		if (!json_get_str(t, "name") || !json_get_str(t, "description") ||
		    strcmp(json_get_str(s, "type") ?: "", "object") != 0)
			bad++;
	}
	ok(bad == 0, "each has a name, a description and an object schema");

	static const struct {
		const char *tool, *args, *want;
	} cases[] = {
	    {"nosuch", "{}", "there is no tool named 'nosuch'"},
	    {"bash", "{}", "missing argument 'command'"},
	    {"bash", "{\"command\": 5}", "argument 'command' must be a string"},
	    {"bash", "{\"command\": \"x\", \"timeout\": 0}", "argument 'timeout' is out of range"},
	    {"bash", "{\"command\": \"x\", \"timeout\": 601}", "out of range"},
	    {"bash", "{\"command\": \"x\", \"timeout\": 1.5}", "must be an integer"},
	    {"bash", "{\"description\": \"d\"}", "missing argument 'command'"},
	    {"bash", "{\"command\": 5, \"description\": \"d\"}", "must be a string"},
	    {"grep", "{\"pattern\": \"x\", \"case\": \"upper\"}", "one of the listed values"},
	    {"edit",
	     "{\"path\": \"a\", \"old_string\": \"a\", \"new_string\": \"b\", "
	     "\"replace_all\": \"yes\"}",
	     "must be true or false"},
	    {"read", "[\"notes.txt\"]", "not a JSON object"},
	    {"read", "{\"path\": ", "not a JSON object"},
	};
	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		run(cases[k].tool, cases[k].args);
		ok(result_error && has(cases[k].want), "%s %s: %s", cases[k].tool, cases[k].args,
		   result);
	}
}

/* Unknown extra arguments are dropped (as the real APIs do), not errors; required and
 * typed ones are still checked (issue 13). */
static void
test_extra_arguments(void)
{
	run("bash", "{\"command\": \"echo extra-ok\", \"description\": \"say it\"}");
	ok(!result_error && has("extra-ok"), "bash with a Claude-style description runs: %s",
	   result);
	_cleanup_json_ json_t *in =
	    json_loads("{\"command\": \"x\", \"description\": \"d\", \"shell\": \"zsh\"}", 0, NULL);
	char why[256] = "";
	int r = tools_check("bash", in, NULL, why, sizeof(why));
	ok(r == 2, "tools_check counts the two unknown arguments (%d)", r);
	ok(strstr(why, "ignored unknown argument 'description'") != NULL, "and names one: %s", why);
	ok(json_object_size(in) == 1 && json_object_get(in, "command"),
	   "only the named argument is left for the handler");
	_cleanup_json_ json_t *bad =
	    json_loads("{\"command\": \"x\", \"timeout\": \"9\"}", 0, NULL);
	ok(tools_check("bash", bad, NULL, why, sizeof(why)) == -EINVAL,
	   "a mistyped known argument is still an error: %s", why);
	_cleanup_json_ json_t *hs = tools_host_schemas();
	ok(json_array_size(hs) == 8 && tools_is_host("install_packages") &&
	       tools_is_host("send_message") && !tools_is_host("bash"),
	   "the host actions alone, for mcp-host");
}

static void
test_files(void)
{
	run("write", "{\"path\": \"a/b/c.txt\", \"content\": \"one\\ntwo\\nthree\\n\"}");
	ok(!result_error && has("wrote 14 bytes to a/b/c.txt"), "write makes parent folders: %s",
	   result);
	run("read", "{\"path\": \"a/b/c.txt\"}");
	ok(!result_error && strcmp(result, "     1\tone\n     2\ttwo\n     3\tthree\n") == 0,
	   "read numbers the lines");
	run("read", "{\"path\": \"a/b/c.txt\", \"offset\": 2, \"limit\": 1}");
	ok(strcmp(result, "     2\ttwo\n[more lines follow; read on with offset 3]\n") == 0,
	   "read with offset and limit says where to go on: %s", result);
	run("read", "{\"path\": \"a/b/c.txt\", \"offset\": 9}");
	ok(has("has 3 lines; nothing at offset 9"), "read past the end: %s", result);
	run("read", "{\"path\": \"a\"}");
	ok(result_error && has("is a folder"), "read of a folder: %s", result);
	run("read", "{\"path\": \"missing\"}");
	ok(result_error && has("no such file"), "read of a missing file: %s", result);
	mkfifo("fifo", 0600);
	run("read", "{\"path\": \"fifo\"}");
	ok(result_error && has("not a regular file"), "read of a FIFO does not hang: %s", result);
	int fd = open("bin", O_WRONLY | O_CREAT | O_TRUNC, 0644);
	(void)!write(fd, "ab\0cd", 5);
	close(fd);
	run("read", "{\"path\": \"bin\"}");
	ok(result_error && has("binary"), "read of a binary file: %s", result);

	run("edit", "{\"path\": \"a/b/c.txt\", \"old_string\": \"two\", \"new_string\": \"TWO\"}");
	ok(!result_error && has("replaced 1 occurrence in"), "edit replaces a unique string");
	run("write", "{\"path\": \"d.txt\", \"content\": \"x y x y x\"}");
	run("edit", "{\"path\": \"d.txt\", \"old_string\": \"x\", \"new_string\": \"z\"}");
	ok(result_error && has("occurs 3 times"), "edit refuses an ambiguous string: %s", result);
	run("edit", "{\"path\": \"d.txt\", \"old_string\": \"q\", \"new_string\": \"z\"}");
	ok(result_error && has("was not found"), "edit of a missing string: %s", result);
	run("edit", "{\"path\": \"d.txt\", \"old_string\": \"x\", \"new_string\": \"x\"}");
	ok(result_error && has("the same"), "edit to the same text: %s", result);
	run("edit", "{\"path\": \"d.txt\", \"old_string\": \"\", \"new_string\": \"x\"}");
	ok(result_error && has("empty"), "edit with an empty old_string: %s", result);
	run("edit", "{\"path\": \"d.txt\", \"old_string\": \"x\", \"new_string\": \"zz\", "
	            "\"replace_all\": true}");
	char buf[64] = "";
	fd = open("d.txt", O_RDONLY);
	(void)!read(fd, buf, sizeof(buf) - 1);
	close(fd);
	ok(has("replaced 3 occurrences") && strcmp(buf, "zz y zz y zz") == 0,
	   "edit with replace_all: '%s'", buf);

	run("write", "{\"path\": \"a/.hidden.txt\", \"content\": \"h\"}");
	run("glob", "{\"pattern\": \"**/*.txt\"}");
	ok(strcmp(result, "a/b/c.txt\nd.txt\n") == 0, "glob ** at any depth, no hidden files: %s",
	   result);
	run("glob", "{\"pattern\": \"*.txt\", \"path\": \"a/b\"}");
	ok(strcmp(result, "c.txt\n") == 0, "glob under a path: %s", result);
	run("glob", "{\"pattern\": \"a/**\"}");
	ok(has("a/b/\n") && has("a/b/c.txt"), "glob a/**: %s", result);
	run("glob", "{\"pattern\": \"*.none\"}");
	ok(has("no files match"), "glob with no match says so");
	run("glob", "{\"pattern\": \"/etc/*\"}");
	ok(result_error, "glob refuses an absolute pattern");

	run("write",
	    "{\"path\": \"g.txt\", \"content\": \"1\\n2 Apple\\n3\\n4\\n5\\n6 apple\\n7\\n\"}");
	run("grep", "{\"pattern\": \"apple\", \"path\": \"g.txt\", \"case\": \"insensitive\", "
	            "\"context\": 1}");
	ok(strcmp(result, "g.txt-1-1\ng.txt:2:2 Apple\ng.txt-3-3\n--\ng.txt-5-5\ng.txt:6:6 "
	                  "apple\ng.txt-7-7\n") == 0,
	   "grep with context and case: %s", result);
	run("grep", "{\"pattern\": \"^thr\", \"glob\": \"*.txt\"}");
	ok(strcmp(result, "a/b/c.txt:3:three\n") == 0, "grep a folder with a glob: %s", result);
	run("grep", "{\"pattern\": \"(\"}");
	ok(result_error && has("bad regular expression"), "grep with a bad pattern: %s", result);
	run("grep", "{\"pattern\": \"zzz-nowhere\"}");
	ok(!result_error && has("no matches"), "grep without matches says so");
}

static void
test_bash(void)
{
	run("bash", "{\"command\": \"echo out; echo err >&2; exit 3\"}");
	ok(result_error && has("out\n") && has("err\n") && has("[exit status 3]"),
	   "bash: stdout and stderr, exit status: %s", result);
	run("bash", "{\"command\": \"true\"}");
	ok(!result_error && strcmp(result, "(no output)") == 0, "bash: no output says so");
	run("bash", "{\"command\": \"head -c 1000000 /dev/zero | tr '\\\\0' x\"}");
	ok(strlen(result) < TOOL_OUTPUT_MAX + 100 && has("[output truncated:"),
	   "bash: output capped with a marker (%zu bytes)", strlen(result));
	int64_t t0 = http_now_ms();
	run("bash", "{\"command\": \"sleep 30 & echo started; sleep 30\", \"timeout\": 1}");
	int64_t took = http_now_ms() - t0;
	ok(result_error && has("started") && has("timed out after 1 s") && took < 5000,
	   "bash: the timeout kills the command and its children (%lld ms)", (long long)took);
	run("bash", "{\"command\": \"(sleep 30 >/dev/null 2>&1 &); echo bg\"}");
	ok(!result_error && has("bg"), "bash: a background child does not hold the call");
	env.deadline_ms = http_now_ms() + 500;
	run("bash", "{\"command\": \"sleep 10\"}");
	ok(result_error && has("invocation's time limit"),
	   "bash: ends at the invocation's deadline");
	env.deadline_ms = 0;
	run("web_fetch", "{\"url\": \"http://example.com/\"}");
	ok(result_error && has("no network"), "web_fetch without a proxy: %s", result);
	run("send_message", "{\"text\": \"hi\"}");
	ok(result_error && has("not available"), "a host action without the daemon's socket: %s",
	   result);
	run("web_fetch", "{\"url\": \"ftp://example.com/\"}");
	ok(result_error && has("not an http"), "web_fetch of another scheme: %s", result);
}

static void
test_html(void)
{
	static const struct {
		const char *html, *want;
	} cases[] = {
	    {"<p>a &amp; b</p><p>c</p>", "a & b\n\nc\n"},
	    {"<script>x<y</script>t", "t\n"},
	    {"<STYLE>p{}</STYLE><b>bold</b> text", "bold text\n"},
	    {"x<!-- hidden --> y", "x y\n"},
	    {"&#0; &#xD800; &#1114112; &#65;", "\xef\xbf\xbd \xef\xbf\xbd \xef\xbf\xbd A\n"},
	    {"&bogus; &amp", "&bogus; &amp\n"},
	    {"<ul><li>a<li>b</ul>", "- a\n- b\n"},
	    {"a<br>b", "a\nb\n"},
	    {"unterminated <tag", "unterminated\n"},
	    {"<script>never ends", ""},
	    {"  lots   of \n\t space  ", "lots of space\n"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tool_output out;
		tool_output_init(&out);
		html_to_text(cases[i].html, strlen(cases[i].html), &out);
		const char *got = tool_output_finish(&out);
		ok(strcmp(got, cases[i].want) == 0, "html %zu: '%s'", i, got);
		tool_output_done(&out);
	}
}

int
main(void)
{
	char dir[] = "/tmp/clawbox-test-tools.XXXXXX";
	if (!mkdtemp(dir) || chdir(dir) < 0)
		return 1;
	test_schema();
	test_extra_arguments();
	test_files();
	test_bash();
	test_html();
	/* Output that is not UTF-8 still comes back, as text a JSON string can hold. */
	struct tool_output o;
	tool_output_init(&o);
	tool_output_add(&o, "\x89PNG\r\n\x1a\n\0\0\0\rIHDR\xff\xfe\x00\x01", 20);
	ok(strcmp(tool_output_finish(&o), "[binary output, 20 bytes]") == 0,
	   "mostly binary output is said to be so, with its size");
	tool_output_done(&o);
	tool_output_init(&o);
	tool_output_add(&o, "l\xe9gacy latin-1 text", 19);
	ok(strcmp(tool_output_finish(&o), "l\xef\xbf\xbdgacy latin-1 text") == 0,
	   "a stray byte in text becomes U+FFFD");
	tool_output_done(&o);
	int rc = tap_done();
	fflush(stdout);
	if (chdir("/") == 0 && fork() == 0) {
		execl("/bin/rm", "rm", "-rf", dir, (char *)NULL);
		_exit(127);
	}
	return rc;
}
