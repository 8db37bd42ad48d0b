#!/usr/bin/env python3
"""Derives tests/data/docker-blocked-x86_64.txt from tests/data/docker-seccomp-default.json.

A syscall counts as blocked by Docker's default profile on x86_64 when no rule allows it for
a container without extra capabilities: not in an unconditional allow rule, and not in a rule
limited to the amd64 arches, a minimum kernel, or argument values (those are allowed for some
calls). Rules that require a capability (CAP_SYS_ADMIN, ...) do not count as allowing.

The x86_64 numbers come from the kernel headers (asm/unistd_64.h) plus the calls added after
Linux 6.1, which Debian 12's headers lack. Run by hand when the profile changes; the output is
committed so that `make check` needs nothing outside the repository.

usage: tools/gen-blocked-list.py [UNISTD_64_H] > tests/data/docker-blocked-x86_64.txt
"""
import json
import re
import sys

NEWER = {  # x86_64 numbers of calls newer than Debian 12's headers
    "cachestat": 451, "fchmodat2": 452, "map_shadow_stack": 453, "futex_wake": 454,
    "futex_wait": 455, "futex_requeue": 456, "statmount": 457, "listmount": 458,
    "lsm_get_self_attr": 459, "lsm_set_self_attr": 460, "lsm_list_modules": 461,
    "mseal": 462, "setxattrat": 463, "getxattrat": 464, "listxattrat": 465,
    "removexattrat": 466, "open_tree_attr": 467, "file_getattr": 468, "file_setattr": 469,
    "uretprobe": 335,
}


def main():
    header = sys.argv[1] if len(sys.argv) > 1 else "/usr/include/x86_64-linux-gnu/asm/unistd_64.h"
    table = {}
    with open(header) as f:
        for line in f:
            m = re.match(r"#define __NR_(\w+)\s+(\d+)", line)
            if m:
                table[m.group(1)] = int(m.group(2))
    table.update(NEWER)

    profile = json.load(open("tests/data/docker-seccomp-default.json"))
    allowed = set()
    for rule in profile["syscalls"]:
        if rule.get("action") != "SCMP_ACT_ALLOW":
            continue
        inc = rule.get("includes", {})
        if "caps" in inc:
            continue  # needs a capability the sandbox does not have
        arches = inc.get("arches")
        if arches and "amd64" not in arches:
            continue
        allowed.update(rule["names"])

    for name, nr in sorted(table.items(), key=lambda kv: kv[1]):
        if name not in allowed:
            print(f"{name} {nr}")


if __name__ == "__main__":
    main()
