/*
 * quota.h: the group folder's quota (config "folder_quota", per group or for all; 1 GiB by
 * default). One run once wrote 256 MiB of a 256 MiB disk. Enforced after each run: the
 * folder's size (allocated blocks, this file system only, symlinks not followed) is measured,
 * and while it is over its quota the group's messages are refused with a reply that says so;
 * a message that finds the folder back under its quota (files deleted) runs as usual.
 */
#ifndef CLAWBOX_QUOTA_H
#define CLAWBOX_QUOTA_H

#include <stdbool.h>
#include <stdint.h>

struct daemon;
struct group_config;

/* The allocated bytes beneath dir (counted up to QUOTA_WALK_MAX entries). 0 or -errno. */
#define QUOTA_WALK_MAX 200000
int quota_usage(const char *dir, uint64_t *ret_bytes);

/* The group's folder use, measured again when fresh or not yet known (else as last measured);
 * 0 on success. */
int quota_group_usage(struct daemon *d, const struct group_config *g, bool fresh,
                      uint64_t *ret_bytes);

/* Whether the group may run: true, or false with the refusal for its message in why. Measures
 * again only a folder that was over its quota. */
bool quota_may_run(struct daemon *d, const struct group_config *g, char *why, size_t size);

/* Sizes as "1.5 MiB". */
void quota_format(uint64_t bytes, char *buf, size_t size);

#endif
