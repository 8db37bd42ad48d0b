/*
 * spawn-time: runs a command N times and prints the median and 95th percentile of its wall
 * time in milliseconds. Written in C so that nothing but the command itself is timed (a shell
 * loop would add a fork and an exec of its own).
 *
 * usage: spawn-time [-n RUNS] [-w WARMUP] [-u UID] -- COMMAND [ARG...]
 *   -u UID   run the command as UID:UID (bwrap, run as root, would map the sandbox to uid 0)
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

int
main(int argc, char **argv)
{
	long runs = 200, warmup = 10, uid = -1;
	int opt;
	while ((opt = getopt(argc, argv, "+n:w:u:")) != -1) {
		switch (opt) {
		case 'n':
			runs = strtol(optarg, NULL, 10);
			break;
		case 'w':
			warmup = strtol(optarg, NULL, 10);
			break;
		case 'u':
			uid = strtol(optarg, NULL, 10);
			break;
		default:
			return 2;
		}
	}
	if (optind >= argc || runs < 1 || runs > 100000) {
		fprintf(stderr, "usage: spawn-time [-n RUNS] [-w WARMUP] [-u UID] -- CMD [ARG...]\n");
		return 2;
	}
	double *t = calloc((size_t)runs, sizeof(double));
	if (!t)
		return 1;
	for (long i = -warmup; i < runs; i++) {
		double start = now_ms();
		pid_t pid = fork();
		if (pid == 0) {
			int null = open("/dev/null", O_WRONLY);
			dup2(null, 1);
			dup2(null, 2);
			if (uid >= 0 && (setgroups(0, NULL) < 0 || setresgid((gid_t)uid, (gid_t)uid, (gid_t)uid) < 0 ||
					 setresuid((uid_t)uid, (uid_t)uid, (uid_t)uid) < 0))
				_exit(120);
			execvp(argv[optind], argv + optind);
			_exit(127);
		}
		int status;
		waitpid(pid, &status, 0);
		double elapsed = now_ms() - start;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			fprintf(stderr, "spawn-time: %s failed (status %d)\n", argv[optind], status);
			return 1;
		}
		if (i >= 0)
			t[i] = elapsed;
	}
	qsort(t, (size_t)runs, sizeof(double), cmp_double);
	printf("%.3f %.3f\n", t[runs / 2], t[(runs * 95) / 100 < runs ? (runs * 95) / 100 : runs - 1]);
	return 0;
}
