#!/bin/bash
# test-install.sh: what a Linux user expects of an installed program. `make install` into a
# DESTDIR and into a PREFIX of a temporary folder; the installed executables run from there and
# find each other and the guest relative to themselves; --version everywhere; the man pages
# render (man -l, and `man clawbox-run` through MANPATH); the bash and zsh completions offer
# subcommands and options; the systemd units pass `systemd-analyze verify`; the XDG and root
# default folders; `make uninstall` leaves nothing.
# Installs with tools/install.sh (what `make install` runs after building), so that a
# `make check SANITIZE=...` tree is not rebuilt plainly underneath the other suites.
. "$(dirname "$0")/lib.sh"
cd "$TOP" || exit 1

[ -f build/man/clawbox.1 ] || tools/mkman.sh build/man

# --- make install DESTDIR=... PREFIX=/usr: the layout; make uninstall: nothing left ---
D=$WORK/destdir
DESTDIR=$D PREFIX=/usr tools/install.sh install >"$WORK/install.log" 2>&1
check "install into DESTDIR succeeds" test $? = 0
missing=""
for f in bin/clawbox bin/clawbox-proxy bin/clawbox-serve bin/clawbox-channel share/man/man1/clawbox.1 \
	share/man/man1/clawbox-run.1 share/man/man1/clawbox-serve.1 \
	share/bash-completion/completions/clawbox share/zsh/site-functions/_clawbox \
	lib/systemd/system/clawbox.service lib/systemd/user/clawbox.service; do
	[ -f "$D/usr/$f" ] || missing="$missing $f"
done
if [ -f build/vm/vmlinux ]; then
	for f in lib/clawbox/vm/vmlinux lib/clawbox/vm/initramfs.cpio; do
		[ -f "$D/usr/$f" ] || missing="$missing $f"
	done
fi
check "the installed files are in DESTDIR/usr (missing:${missing:- none})" test -z "$missing"
check "the system unit starts /usr/bin/clawbox serve (BINDIR filled in)" \
	grep -qx 'ExecStart=/usr/bin/clawbox serve' "$D/usr/lib/systemd/system/clawbox.service"
check "the executables are executable, the rest is not" \
	sh -c "test -x '$D/usr/bin/clawbox-serve' && ! test -x '$D/usr/share/man/man1/clawbox.1'"
chmod 755 "$WORK"
"$D/usr/bin/clawbox" run --net proxy -- true >"$WORK/out" 2>"$WORK/err"
check "run from DESTDIR: clawbox run --net proxy finds the proxy beside it (exit $?)" \
	sh -c "test $? = 0"
check "run from DESTDIR: clawbox serve hands over to the clawbox-serve beside it" \
	sh -c "'$D/usr/bin/clawbox' serve --version | grep -qx 'clawbox-serve [0-9.]*'"
DESTDIR=$D PREFIX=/usr tools/install.sh uninstall >>"$WORK/install.log" 2>&1
left=$(find "$D" ! -type d | head -5 | tr '\n' ' ')
check "uninstall leaves no file behind (left: ${left:-none})" test -z "$left"
left=$(find "$D" -mindepth 1 -type d -name '*clawbox*' | head -3 | tr '\n' ' ')
check "uninstall removes clawbox's own folders (left: ${left:-none})" test -z "$left"
PREFIX=relative tools/install.sh install >"$WORK/bad.out" 2>&1
check "a relative PREFIX is refused in one line (exit 2)" \
	sh -c "test $? = 2 && test \$(wc -l <'$WORK/bad.out') = 1 && grep -q 'PREFIX must be an absolute' '$WORK/bad.out'"

# --- an install into a PREFIX of ours: run it from there ---
P=$WORK/prefix
chmod 755 "$WORK"
PREFIX=$P tools/install.sh install >"$WORK/install2.log" 2>&1
check "install into PREFIX=$P succeeds" test $? = 0
IB=$P/bin
"$IB/clawbox" run -- true >"$WORK/out" 2>"$WORK/err"
check "the installed clawbox runs a sandbox (run -- true)" test $? = 0
"$IB/clawbox" run --net proxy -- sh -c 'test -n "$HTTP_PROXY"' >"$WORK/out" 2>"$WORK/err"
check "the installed clawbox finds the installed clawbox-proxy (run --net proxy)" test $? = 0
rm -f "$IB/clawbox-proxy"
"$IB/clawbox" run --net proxy -- true >"$WORK/out" 2>"$WORK/err"
check "without its sibling it says so, and does not use the build tree's proxy" \
	sh -c "test $? = 125 && grep -q 'clawbox-proxy not found next to clawbox' '$WORK/err'"
install -m 755 clawbox-proxy "$IB/clawbox-proxy"
mv "$P/lib/clawbox/vm" "$P/lib/clawbox/vm.away" 2>/dev/null
env -u CLAWBOX_VM_IMAGE "$IB/clawbox" run --vm -- true >"$WORK/out" 2>"$WORK/err"
check "the installed clawbox looks for the guest in PREFIX/lib/clawbox/vm" \
	grep -q "no guest image in $P/lib/clawbox/vm " "$WORK/err"
mv "$P/lib/clawbox/vm.away" "$P/lib/clawbox/vm" 2>/dev/null
# A clawbox outside a bin folder is a build tree's: the guest is build/vm next to it.
mkdir -p "$WORK/tree" && cp clawbox "$WORK/tree/clawbox"
env -u CLAWBOX_VM_IMAGE "$WORK/tree/clawbox" run --vm -- true >/dev/null 2>"$WORK/err"
check "a build tree's clawbox looks for the guest in build/vm next to it" \
	grep -q "no guest image in $WORK/tree/build/vm " "$WORK/err"

# --- --version: every executable, every subcommand ---
want="0\.[0-9]+\.[0-9]+"
bad=""
for exe in clawbox clawbox-proxy clawbox-serve clawbox-channel; do
	"$IB/$exe" --version | grep -qxE "$exe $want" || bad="$bad $exe"
done
for sub in $("$IB/clawbox" --help | sed -n 's/^  \([a-z][a-z-]*\) .*/\1/p'); do
	out=$("$IB/clawbox" "$sub" --version 2>&1)
	case $sub in
	serve | proxy) echo "$out" | grep -qxE "clawbox-$sub $want" || bad="$bad $sub" ;;
	*) echo "$out" | grep -qxE "clawbox $want" || bad="$bad $sub" ;;
	esac
	n_subs=$((${n_subs:-0} + 1))
done
check "--version answers on the 3 executables and all $n_subs subcommands (failed:${bad:- none})" \
	sh -c "test -z '$bad' && test $n_subs -ge 11"

# --- man pages ---
bad=""
for m in "$P"/share/man/man1/*.1; do
	MANWIDTH=80 man -l "$m" 2>"$WORK/man.err" | grep -q '^NAME' && [ ! -s "$WORK/man.err" ] ||
		bad="$bad ${m##*/}"
done
n_man=$(ls "$P"/share/man/man1/*.1 | wc -l)
check "man -l renders all $n_man pages without a warning (failed:${bad:- none})" \
	sh -c "test -z '$bad' && test $n_man -ge 12"
MANPATH=$P/share/man MANWIDTH=80 man clawbox-run 2>/dev/null >"$WORK/man.out"
check "man clawbox-run works after install (MANPATH), and lists --model-ca-file" \
	grep -q -- '--model-ca-file' "$WORK/man.out"
check "clawbox-serve(1) is the page of clawbox-serve --help (one source)" \
	sh -c "MANPATH='$P/share/man' MANWIDTH=200 man clawbox-serve 2>/dev/null | grep -q -- '--check-config   check the configuration'"

# --- completions ---
comp() { # bash completion of the words given, printed one per line
	bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _clawbox
		printf "%s\n" "${COMPREPLY[@]}"' _ "$P/share/bash-completion/completions/clawbox" "$@"
}
check "bash completes subcommands (clawbox v -> vm-service)" \
	sh -c "test \"\$(cd / && PATH='$IB:/usr/bin:/bin' bash -c '. \"$P/share/bash-completion/completions/clawbox\"; COMP_WORDS=(clawbox v); COMP_CWORD=1; _clawbox; echo \${COMPREPLY[*]}')\" = vm-service"
out=$(comp "$IB/clawbox" run --model-c)
check "bash completes a subcommand's options (run --model-c -> --model-ca-file)" \
	test "$out" = "--model-ca-file"
out=$(comp "$IB/clawbox" ask --vers)
check "bash completes --version on a subcommand" test "$out" = "--version"
out=$(comp "$IB/clawbox" run --net "")
check "bash completes option values (--net -> none proxy)" test "$(echo $out)" = "none proxy"
if command -v zsh >/dev/null; then
	zsh -n "$P/share/zsh/site-functions/_clawbox"
	check "the zsh completion parses" test $? = 0
	out=$(zsh -fc "fpath=('$P/share/zsh/site-functions' \$fpath); autoload -U compinit;
		compinit -u -D; print \$_comps[clawbox]" 2>&1)
	check "compinit registers _clawbox for clawbox (#compdef)" test "$out" = "_clawbox"
	zsh -fc "source '$P/share/zsh/site-functions/_clawbox' 2>/dev/null;
		_clawbox_options '$IB/clawbox' run; _clawbox_subcommands '$IB/clawbox'" >"$WORK/zsh.out" 2>&1
	check "the zsh completion's lists: run's --vm-accel, the subcommand vm-service" \
		sh -c "grep -qx -- --vm-accel '$WORK/zsh.out' && grep -q '^vm-service:one long-lived' '$WORK/zsh.out'"
else
	not_ok "zsh is missing (scripts/deps.sh test installs it)"
fi

# --- systemd units ---
mkdir -p "$WORK/rt" && chmod 700 "$WORK/rt"
for kind in system user; do
	flag=""
	[ $kind = user ] && flag=--user
	MANPATH=$P/share/man XDG_RUNTIME_DIR=$WORK/rt systemd-analyze $flag verify \
		"$P/lib/systemd/$kind/clawbox.service" >"$WORK/verify.out" 2>&1
	rc=$?
	check "systemd-analyze $flag verify: the $kind unit is clean ($(head -c 200 "$WORK/verify.out" | tr '\n' ' '))" \
		sh -c "test $rc = 0 && ! test -s '$WORK/verify.out'"
done
# The check itself can fail: a unit with a wrong directive does.
sed 's/^Delegate=yes/Delegate=bogus/' "$P/lib/systemd/system/clawbox.service" >"$WORK/rt/clawbox.service"
MANPATH=$P/share/man systemd-analyze verify "$WORK/rt/clawbox.service" >"$WORK/verify.out" 2>&1
check "systemd-analyze verify reports a broken unit (the check can fail)" test -s "$WORK/verify.out"
for d in ProtectKernelTunables ProtectControlGroups RestrictNamespaces MemoryDenyWriteExecute \
	PrivateDevices SystemCallFilter; do
	grep -q "^$d=" "$P/lib/systemd/system/clawbox.service" && bad_unit="${bad_unit:-} $d"
done
check "the system unit sets none of the directives that break the sandbox (${bad_unit:-none})" \
	test -z "${bad_unit:-}"

PREFIX=$P tools/install.sh uninstall >/dev/null 2>&1
left=$(find "$P" ! -type d | head -5 | tr '\n' ' ')
check "uninstall from PREFIX leaves no file behind (left: ${left:-none})" test -z "$left"

# --- the default folders: XDG, and root without a usable HOME ---
# The daemon's first start, in a network namespace of its own (its loopback port is nobody
# else's), with /etc and /var/lib overlaid by scratch folders so the host's are never written.
first_start() { # ENV-ARGS...: starts clawbox-serve, waits for an api-token, prints where
	unshare -mn --propagation private bash -c '
		ov=$1; shift
		ip link set lo up
		for d in etc var/lib; do
			n=${d//\//_}; mkdir -p "$ov/$n.up" "$ov/$n.wk"
			mount -t overlay overlay -o "lowerdir=/$d,upperdir=$ov/$n.up,workdir=$ov/$n.wk" "/$d"
		done
		env "$@" "'"$TOP"'/clawbox-serve" >"$ov/serve.log" 2>&1 &
		pid=$!
		for i in $(seq 1 100); do
			found=$(ls /var/lib/clawbox/api-token "$ov"/*/clawbox/api-token "$ov"/home/.local/share/clawbox/api-token 2>/dev/null | grep -v "\.up/" | head -n1)
			[ -n "$found" ] && break
			sleep 0.1
		done
		kill $pid 2>/dev/null; wait $pid 2>/dev/null
		echo "${found:-none}"
		ls /etc/clawbox/config.json "$ov"/*/clawbox/config.json 2>/dev/null | grep -v "\.up/" | head -n1
	' _ "$@"
}
before=$(ls -d /etc/clawbox /var/lib/clawbox 2>/dev/null)
rm -rf "$WORK/ov" && mkdir -p "$WORK/ov"
out=$(first_start "$WORK/ov" -u HOME -u XDG_CONFIG_HOME -u XDG_DATA_HOME)
check "root with HOME unset: /var/lib/clawbox and /etc/clawbox/config.json ($(echo $out))" \
	test "$(echo $out)" = "/var/lib/clawbox/api-token /etc/clawbox/config.json"
check "... and the host's /etc/clawbox and /var/lib/clawbox were not made (overlays)" \
	test "$(ls -d /etc/clawbox /var/lib/clawbox 2>/dev/null)" = "$before"
rm -rf "$WORK/ov" && mkdir -p "$WORK/ov"
out=$(first_start "$WORK/ov" -u XDG_CONFIG_HOME -u XDG_DATA_HOME HOME=/)
check "root with HOME=/: the same system folders ($(echo $out))" \
	test "$(echo $out)" = "/var/lib/clawbox/api-token /etc/clawbox/config.json"
rm -rf "$WORK/ov" && mkdir -p "$WORK/ov"
out=$(first_start "$WORK/ov" HOME="$WORK/ov/home" XDG_CONFIG_HOME="$WORK/ov/cfg" XDG_DATA_HOME="$WORK/ov/data")
check "XDG_CONFIG_HOME and XDG_DATA_HOME are honoured ($(echo $out))" \
	test "$(echo $out)" = "$WORK/ov/data/clawbox/api-token $WORK/ov/cfg/clawbox/config.json"
check "... and the default configuration written names that data folder" \
	grep -q "\"data_dir\": \"$WORK/ov/data/clawbox\"" "$WORK/ov/cfg/clawbox/config.json"
HOME=/ XDG_DATA_HOME= XDG_CONFIG_HOME= "$CLAWBOX" groups >/dev/null 2>"$WORK/err"
check "the client's default token path matches the daemon's for root with HOME=/" \
	grep -q "/var/lib/clawbox/api-token" "$WORK/err"
XDG_DATA_HOME="$WORK/xd" "$CLAWBOX" groups >/dev/null 2>"$WORK/err"
check "the client honours XDG_DATA_HOME" grep -q "$WORK/xd/clawbox/api-token" "$WORK/err"

echo "1..$T_NUM"
[ "$T_FAILED" = 0 ]
