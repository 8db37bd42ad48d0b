#!/bin/bash
# test-idmap.sh: when root launches the sandbox, a writable mount is idmapped to the folder's
# owner: what the sandbox writes belongs to that owner on the host, the owner's files are the
# sandbox user's inside, no other host uid can be created through it, read-only mounts stay
# plain binds, and a file system that cannot idmap (ramfs) keeps the old behaviour with one
# line saying so. git works in a mounted repository either way. Run as a normal user, only the
# git and read-only checks apply (there is nothing to map: the sandbox is the caller).
. "$(dirname "$0")/lib.sh"

M=$WORK/m
mkdir -p "$M/rootdir/sub" "$M/u1234" "$M/mixed" "$M/ro"
echo "owner's" >"$M/u1234/file"
echo private >"$M/rootdir/private"
chmod 600 "$M/rootdir/private"
echo other >"$M/mixed/others"
echo "read me" >"$M/ro/file"
chmod 755 "$M"

if is_root; then
	chown -R 1234:1234 "$M/u1234"
	chown 4321:4321 "$M/mixed/others"
	chmod 700 "$M/rootdir"

	run_cb run --mount "$M/rootdir:/w:rw" -- sh -c 'echo new >/w/created && mkdir /w/d && touch /w/d/f && cat /w/private && stat -c "%u:%g" /w /w/private'
	check "a root-owned :rw folder takes writes from inside (exit $RC)" \
		sh -c "[ $RC = 0 ] && grep -qx new '$M/rootdir/created'"
	check "its files are the sandbox user's inside (0600 ones too)" \
		sh -c "grep -qx private '$WORK/out' && [ \"\$(grep -c '^1000:1000$' '$WORK/out')\" = 2 ]"
	check "what the sandbox created belongs to the folder's owner (root) on the host" \
		test "$(stat -c %u:%g "$M/rootdir/created" "$M/rootdir/d" "$M/rootdir/d/f" | sort -u)" = 0:0
	check "no warning for an idmappable folder" test ! -s "$WORK/err"

	run_cb run --mount "$M/u1234:/w:rw" -- sh -c 'stat -c "%u %U" /w/file && echo more >>/w/file && touch /w/new'
	check "a file of uid 1234 on the host is the sandbox user's inside" grep -qx "1000 user" "$WORK/out"
	check "and writable: the write lands, new files are uid 1234's" \
		sh -c "[ $RC = 0 ] && grep -qx more '$M/u1234/file' && [ \"\$(stat -c %u:%g '$M/u1234/new')\" = 1234:1234 ]"

	# The mapping holds the owner's ids only: another owner's file is nobody's inside, and
	# no uid but the owner's can be given to a file through the mount.
	run_cb run --mount "$M/mixed:/w:rw" -- sh -c 'stat -c %u /w/others; echo x >>/w/others; echo rc=$?; touch /w/mine; chown 4321 /w/mine; echo rc=$?; chown 0 /w/mine; echo rc=$?; chgrp 4321 /w/mine; echo rc=$?'
	check "another host owner's file shows as nobody (65534)" grep -qx 65534 "$WORK/out"
	check "another host owner's file is not writable, chown/chgrp to other ids fail" \
		test "$(grep -c '^rc=[1-9]' "$WORK/out")" = 4
	check "every file in the folder is owned by its owner or the file's original owner" \
		sh -c "[ \"\$(find '$M/mixed' -not -user 0 | grep -v /others)\" = '' ] && [ \"\$(stat -c %u '$M/mixed/others')\" = 4321 ] && grep -qx other '$M/mixed/others'"

	# Through the mapping the sandbox owns root's folder; a set-id bit on a file there would
	# make a setuid-root program on the host. Every way to set one is refused.
	mkdir -p "$M/setid"
	cat >"$WORK/setid.py" <<'PY'
import ctypes, errno, os
def attempt(what, f):
    try:
        f(); print(what, "allowed")
    except OSError as e:
        print(what, errno.errorcode[e.errno])
attempt("chmod-u+s", lambda: os.chmod("/w/t", 0o4755))
attempt("chmod-g+s", lambda: os.chmod("/w/t", 0o2755))
attempt("fchmod", lambda: os.fchmod(os.open("/w/t", os.O_RDONLY), 0o4755))
attempt("open-creat", lambda: os.open("/w/o", os.O_CREAT | os.O_WRONLY, 0o4755))
attempt("open-tmpfile", lambda: os.open("/w", os.O_TMPFILE | os.O_WRONLY, 0o6755))
attempt("mknod", lambda: os.mknod("/w/m", 0o104755))
libc = ctypes.CDLL(None, use_errno=True)
how = (ctypes.c_uint64 * 3)(os.O_CREAT | os.O_WRONLY, 0o4755, 0)
r = libc.syscall(437, -100, b"/w/o2", how, 24)
print("openat2", "allowed" if r >= 0 else errno.errorcode[ctypes.get_errno()])
attempt("chmod-plain", lambda: os.chmod("/w/t", 0o755))
PY
	run_cb run --mount "$M/setid:/w:rw" --mount "$WORK/setid.py:/setid.py" -- sh -c 'cp /bin/true /w/t && python3 /setid.py'
	check "set-id bits: chmod, fchmod, open and mknod are refused with EPERM" \
		test "$(grep -c ' EPERM$' "$WORK/out")" = 6
	check "openat2, whose mode seccomp cannot see, is ENOSYS" grep -qx "openat2 ENOSYS" "$WORK/out"
	check "a plain chmod still works" grep -qx "chmod-plain allowed" "$WORK/out"
	check "no set-id file on the host" test -z "$(find "$M/setid" -perm /6000)"

	# Read-only mounts are not mapped: the owner's private files stay closed.
	run_cb run --mount "$M/rootdir:/w" -- sh -c 'stat -c %u /w; cat /w/private; touch /w/x'
	check "a read-only mount is not idmapped (owner is nobody inside, 0600 unreadable, no writes)" \
		sh -c "[ $RC != 0 ] && grep -qx 65534 '$WORK/out' && ! grep -q private '$WORK/out' && [ ! -e '$M/rootdir/x' ]"

	# A mount of an idmapped folder read-only on top of it keeps both properties.
	run_cb run --mount "$M/rootdir:/w:rw" --mount "$M/ro:/w/sub:ro" -- sh -c 'touch /w/ok && touch /w/sub/no'
	check "a :ro mount nested in an idmapped :rw one stays read-only" \
		sh -c "[ $RC != 0 ] && [ -e '$M/rootdir/ok' ] && [ ! -e '$M/ro/no' ]"

	# ramfs cannot idmap: the plain bind stays, and one line says which folder and what to do.
	mkdir -p "$WORK/ramfs"
	unshare -m sh -c "mount -t ramfs none '$WORK/ramfs' && '$CLAWBOX' run --mount '$WORK/ramfs:/w:rw' -- sh -c 'touch /w/x; stat -c %u /w'" \
		>"$WORK/out" 2>"$WORK/err"
	check "a folder on ramfs: one warning line naming the folder and the chown to do" \
		sh -c "[ \$(grep -c . '$WORK/err') = 2 ] && grep -q 'warning: $WORK/ramfs: its file system .*cannot map its owner.*chown -R $SANDBOX_HOST_UID $WORK/ramfs' '$WORK/err'"
	check "and the folder behaves as before (root's folder, not writable by the sandbox)" \
		sh -c "grep -q 'Permission denied' '$WORK/err' && grep -qx 65534 '$WORK/out'"
	unshare -m sh -c "mount -t ramfs none '$WORK/ramfs' && chown $SANDBOX_HOST_UID '$WORK/ramfs' && '$CLAWBOX' run --mount '$WORK/ramfs:/w:rw' -- sh -c 'touch /w/x && stat -c %u /w/x'" \
		>"$WORK/out" 2>"$WORK/err"
	check "with the chown the warning says to do, it is writable and warns no more" \
		sh -c "grep -qx 1000 '$WORK/out' && [ ! -s '$WORK/err' ]"
fi

# git: a repository mounted read-only shows a foreign owner, but git is told that every folder
# in the sandbox is safe (there is no other user inside to protect).
git init -q "$M/repo"
git -C "$M/repo" -c user.email=t@t -c user.name=t commit -q --allow-empty -m first
chmod -R a+rX "$M/repo"
run_cb run --mount "$M/repo:/r" --workdir /r -- sh -c 'git status --porcelain && git log --format=%s'
check "git status works in a read-only mounted repository (exit $RC)" \
	sh -c "[ $RC = 0 ] && grep -qx first '$WORK/out' && ! grep -q dubious '$WORK/err'"
if is_root; then
	run_cb run --mount "$M/repo:/r:rw" --workdir /r -- sh -c 'echo x >f && git add f && git -c user.email=s@s -c user.name=s commit -q -m second && git log --format=%s'
	check "git commits in a root-owned :rw repository (exit $RC)" \
		sh -c "[ $RC = 0 ] && grep -qx second '$WORK/out' && [ \"\$(git -C '$M/repo' log -1 --format=%s)\" = second ]"
	check "the repository's new objects are root's on the host" \
		test "$(find "$M/repo" -not -user 0 | wc -l)" = 0
fi
done_testing
