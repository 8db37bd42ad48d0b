/*
 * replay.c: runs every file of the saved corpus (CORPUS_DIR, or the files named on the
 * command line) through LLVMFuzzerTestOneInput, so that the corpus is a regression test in
 * `make check` without libFuzzer. Prints TAP.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef CORPUS_DIR
#define CORPUS_DIR "tests/fuzz/corpus/request"
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int n;

static void
run_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		printf("not ok %d - open %s\n", ++n, path);
		return;
	}
	static uint8_t buf[1 << 20];
	size_t len = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	LLVMFuzzerTestOneInput(buf, len);
	printf("ok %d - %s\n", ++n, path);
}

int
main(int argc, char **argv)
{
	if (argc == 1) {
		DIR *d = opendir(CORPUS_DIR);
		struct dirent *de;
		char path[4096];
		while (d && (de = readdir(d)))
			if (de->d_name[0] != '.') {
				snprintf(path, sizeof(path), "%s/%s", CORPUS_DIR, de->d_name);
				run_file(path);
			}
		if (d)
			closedir(d);
		if (n == 0)
			printf("not ok 1 - no corpus in %s\n", CORPUS_DIR), n = 1;
	}
	for (int i = 1; i < argc; i++)
		run_file(argv[i]);
	printf("1..%d\n", n);
	return 0;
}
