/*
 * test-log.c: the shapes of a log line. Plain text stays "prefix: message" for every process
 * that does not opt in; the daemon's timestamps and JSON lines carry the fields, escaped.
 */
#include <regex.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log.h"
#include "tap.h"

static int capture = -1, saved = -1;

static void
start(void)
{
	capture = memfd_create("log", MFD_CLOEXEC);
	saved = dup(STDERR_FILENO);
	dup2(capture, STDERR_FILENO);
}

/* What was logged since start(), as a string. */
static const char *
stop(void)
{
	static char buf[8192];
	dup2(saved, STDERR_FILENO);
	close(saved);
	ssize_t n = pread(capture, buf, sizeof(buf) - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	close(capture);
	return buf;
}

static bool
matches(const char *s, const char *pattern)
{
	regex_t re;
	if (regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB) != 0)
		return false;
	bool m = regexec(&re, s, 0, NULL, 0) == 0;
	regfree(&re);
	return m;
}

int
main(void)
{
	const char *out;
	log_set_prefix("clawbox test");

	start();
	log_error("bad %s", "thing");
	log_warn("careful");
	log_info("news");
	out = stop();
	ok(strcmp(out, "clawbox test: bad thing\nclawbox test: warning: careful\n"
	               "clawbox test: news\n") == 0,
	   "the default text lines are as they always were");

	const char *const fields[] = {"group", "main", "message", "42", NULL};
	start();
	log_fields("info", fields, "run started");
	out = stop();
	ok(strcmp(out, "clawbox test: run started group=main message=42\n") == 0,
	   "fields follow the message as name=value");

	log_set_format(LOG_TEXT_TIMESTAMPED);
	start();
	log_warn("careful");
	out = stop();
	ok(matches(out,
	           "^20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9]\\.[0-9]{3}Z "
	           "clawbox test: warning: careful\n$"),
	   "timestamped: a UTC time before each line");

	log_set_format(LOG_JSON);
	const char *const tricky[] = {
	    "path", "a\"b\\c\nd\x1b[2J", "zero", "007", "neg", "-5", "empty", "", NULL};
	start();
	log_fields("warning", tricky, "quote \" and \\ and\ttab");
	out = stop();
	ok(matches(
	       out,
	       "^\\{\"time\":\"20[0-9]{2}-[0-9-]{5}T[0-9:]{8}\\.[0-9]{3}Z\",\"level\":"
	       "\"warning\",\"msg\":\"quote \\\\\" and \\\\\\\\ and\\\\ttab\",\"path\":"
	       "\"a\\\\\"b\\\\\\\\c\\\\nd\\[2J\",\"zero\":\"007\",\"neg\":-5,\"empty\":\"\"\\}\n$"),
	   "JSON: escaped, controls dropped, numbers only where they are numbers");
	start();
	log_error("plain");
	log_info("news");
	out = stop();
	ok(strstr(out, "\"level\":\"error\",\"msg\":\"plain\"}\n") &&
	       strstr(out, "\"level\":\"info\",\"msg\":\"news\"}\n"),
	   "JSON: error and info levels");
	char big[3000];
	memset(big, '"', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	const char *const many[] = {"a", big, "b", big, "c", "1", NULL};
	start();
	log_fields("info", many, "%s", big);
	out = stop();
	size_t len = strlen(out);
	ok(len > 0 && len < 2100 && strchr(out, '\n') == out + len - 1 &&
	       strcmp(out + len - 3, "\"}\n") == 0,
	   "a long JSON line is cut, still one line and closed (%zu bytes)", len);
	log_set_format(LOG_TEXT);
	start();
	log_fields("info", many, "%s", big);
	out = stop();
	len = strlen(out);
	ok(len > 0 && len < 2100 && strchr(out, '\n') == out + len - 1,
	   "a long text line is cut, still one line (%zu bytes)", len);
	return tap_done();
}
