/*
 * spawn-time: times commands run over and over and prints, for each, the median and the 95th
 * percentile of its wall time in milliseconds. Several commands are interleaved (one run of
 * each in turn), so that drift in the machine's speed during the run affects them alike.
 * Written in C so that nothing but the command itself is timed (a shell loop would add a fork
 * and an exec of its own).
 *
 * usage: spawn-time [-n RUNS] [-w WARMUP] -- [-u UID] CMD [ARG...] [::: [-u UID] CMD [ARG...]]...
 *   -u UID   run that command as UID:UID (bwrap, run as root, would map the sandbox to uid 0)
 * Output: one line "MEDIAN P95" per command, in order.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_CMDS 8

struct cmd {
	char **argv;
	long uid;
	double *t;
};

static double
now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double
run_once(const struct cmd *c)
{
	double start = now_ms();
	pid_t pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		dup2(null, 2);
		if (c->uid >= 0 && (setgroups(0, NULL) < 0 ||
				    setresgid((gid_t)c->uid, (gid_t)c->uid, (gid_t)c->uid) < 0 ||
				    setresuid((uid_t)c->uid, (uid_t)c->uid, (uid_t)c->uid) < 0))
			_exit(120);
		execvp(c->argv[0], c->argv);
		_exit(127);
	}
	int status;
	waitpid(pid, &status, 0);
	double elapsed = now_ms() - start;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "spawn-time: %s failed (status %d)\n", c->argv[0], status);
		exit(1);
	}
	return elapsed;
}

int
main(int argc, char **argv)
{
	long runs = 200, warmup = 10;
	struct cmd cmds[MAX_CMDS];
	int n = 0, opt;

	while ((opt = getopt(argc, argv, "+n:w:")) != -1) {
		if (opt == 'n')
			runs = strtol(optarg, NULL, 10);
		else if (opt == 'w')
			warmup = strtol(optarg, NULL, 10);
		else
			return 2;
	}
	for (int i = optind; i < argc && n < MAX_CMDS;) {
		struct cmd *c = &cmds[n++];
		c->uid = -1;
		if (strcmp(argv[i], "-u") == 0 && i + 1 < argc) {
			c->uid = strtol(argv[i + 1], NULL, 10);
			i += 2;
		}
		c->argv = &argv[i];
		while (i < argc && strcmp(argv[i], ":::") != 0)
			i++;
		if (i < argc)
			argv[i++] = NULL; /* ends this command's argv */
		if (!c->argv[0])
			return 2;
	}
	if (n == 0 || runs < 1 || runs > 100000) {
		fprintf(stderr, "usage: spawn-time [-n RUNS] [-w WARMUP] -- [-u UID] CMD [ARG...] "
				"[::: [-u UID] CMD [ARG...]]...\n");
		return 2;
	}
	for (int k = 0; k < n; k++)
		if (!(cmds[k].t = calloc((size_t)runs, sizeof(double))))
			return 1;
	for (long i = -warmup; i < runs; i++)
		for (int k = 0; k < n; k++) {
			double t = run_once(&cmds[k]);
			if (i >= 0)
				cmds[k].t[i] = t;
		}
	for (int k = 0; k < n; k++) {
		qsort(cmds[k].t, (size_t)runs, sizeof(double), cmp_double);
		printf("%.3f %.3f\n", cmds[k].t[runs / 2], cmds[k].t[(runs * 95) / 100]);
	}
	return 0;
}
