#!/bin/sh
# deps.sh: make sure the Debian packages a target needs are installed.
#   scripts/deps.sh build   - what `make all` needs beyond make and gcc (the -dev packages;
#                             libseccomp: the sandbox filter at build time, and clawbox-proxy links it)
#   scripts/deps.sh test    - what `make check` (and check-fresh) drives besides our binaries
#   scripts/deps.sh bench   - bubblewrap and mitmproxy, the peers we are measured against
# pkg-config (or dpkg for tools) decides what is missing; as root it is installed with
# apt-get and named on stdout; otherwise the missing packages are named and we fail. This is the
# one list of build packages: .ci/run calls this script rather than keeping a copy.
set -eu

want=""
need_pkg() { # $1 = Debian package, $2 = check command
	if ! sh -c "$2" >/dev/null 2>&1; then want="$want $1"; fi
}

case "${1:-build}" in
build)
	need_pkg pkg-config "command -v pkg-config"
	need_pkg libseccomp-dev "pkg-config --exists libseccomp"
	need_pkg libc6-dev "test -f /usr/lib/x86_64-linux-gnu/libc.a || test -f /usr/lib/libc.a"
	# the agent (in clawbox, statically) and the egress proxy
	need_pkg libjansson-dev "pkg-config --exists jansson"
	need_pkg libhttp-parser-dev "test -f /usr/include/http_parser.h"
	# the egress proxy (clawbox-proxy) only
	need_pkg libevent-dev "pkg-config --exists libevent"
	need_pkg libidn2-dev "pkg-config --exists libidn2"
	need_pkg libcurl4-openssl-dev "pkg-config --exists libcurl"
	# the channels' WebSockets (Slack Socket Mode, the Discord Gateway): wslay has no .pc
	need_pkg libwslay-dev "test -f /usr/include/wslay/wslay.h"
	# the daemon (clawbox-serve): its store
	need_pkg libsqlite3-dev "pkg-config --exists sqlite3"
	# TLS: the tests' HTTPS server links libevent_openssl and openssl
	need_pkg libssl-dev "pkg-config --exists openssl"
	# the web app's bundle (web/package-lock.json: esbuild, marked, DOMPurify)
	need_pkg nodejs "command -v node"
	need_pkg npm "command -v npm"
	# the email channel (clawbox-channel email): MIME by GMime, HTML mail as text by libxml2
	need_pkg libgmime-3.0-dev "pkg-config --exists gmime-3.0"
	need_pkg libxml2-dev "pkg-config --exists libxml-2.0"
	# the XMPP channel (clawbox-channel xmpp)
	need_pkg libstrophe-dev "pkg-config --exists libstrophe"
	;;
test)
	need_pkg util-linux "command -v setpriv"
	need_pkg procps "command -v pgrep"
	need_pkg curl "command -v curl"
	need_pkg jq "command -v jq" # the integration tests read JSON answers with it
	need_pkg openssl "command -v openssl"
	need_pkg git "command -v git"       # test-services: git over https
	need_pkg python3 "command -v python3" # test-services: the service's server, urllib
	need_pkg iproute2 "command -v ip"
	# test-slack.sh, test-discord.sh: the fake services' WebSocket servers
	need_pkg python3-websockets "/usr/bin/python3 -c 'import websockets'"
	need_pkg chromium "command -v chromium"
	# the microVM layer: a VMM, a guest kernel, the tools that build its initramfs
	need_pkg qemu-system-x86 "command -v qemu-system-x86_64"
	need_pkg linux-image-amd64 "ls /boot/vmlinuz-* >/dev/null 2>&1"
	need_pkg cpio "command -v cpio"
	need_pkg xz-utils "command -v xz"
	# make check-fresh (a minimal Debian 12 tree), the man pages, the systemd units' check
	need_pkg debootstrap "command -v debootstrap"
	need_pkg scdoc "command -v scdoc"
	need_pkg man-db "command -v man"
	need_pkg systemd "command -v systemd-analyze"
	need_pkg zsh "command -v zsh" # the zsh completion's test
	need_pkg shellcheck "command -v shellcheck" # make lint
	need_pkg clang-tidy "command -v clang-tidy" # make lint
	# services inside a run (test-background.sh): real databases started by the bash tool
	need_pkg redis-server "command -v redis-server"
	need_pkg postgresql "test -x /usr/lib/postgresql/15/bin/postgres"
	# test-envs.sh: a local Debian repository, npm registry and PyPI index
	need_pkg dpkg-dev "command -v dpkg-scanpackages"
	need_pkg npm "command -v npm"
	need_pkg python3-venv "/usr/bin/python3 -c 'import ensurepip'"
	# test-engines.sh: the engines (Claude Code, Codex) and MCP servers come from npm
	need_pkg nodejs "command -v node"
	# test-email.sh: real IMAP (Dovecot) and SMTP (Postfix) servers; test-xmpp.sh: Prosody
	need_pkg dovecot-imapd "command -v dovecot"
	need_pkg postfix "test -x /usr/sbin/postfix"
	need_pkg prosody "command -v prosodyctl"
	;;
bench)
	need_pkg bubblewrap "command -v bwrap"
	need_pkg mitmproxy "command -v mitmdump" # the TLS interception peer
	;;
*)
	echo "usage: deps.sh build|test|bench" >&2
	exit 2
	;;
esac

[ -z "$want" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "deps.sh: missing Debian packages:$want (install them as root: apt-get install$want)" >&2
	exit 1
fi
echo "deps.sh: installing$want"
export DEBIAN_FRONTEND=noninteractive
# A fresh machine (or image) may have empty package lists: nothing can be installed until
# they are fetched. Otherwise try first without, and update only if that fails (stale lists).
if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -print -quit 2>/dev/null)" ]; then
	echo "deps.sh: the package lists are empty: apt-get update"
	apt-get update -q >/dev/null
fi
if ! apt-get install -y -q --no-install-recommends $want >/dev/null 2>&1; then
	apt-get update -q >/dev/null 2>&1 || true
	if ! apt-get install -y -q --no-install-recommends $want >/dev/null; then
		echo "deps.sh: could not install$want (apt-get install failed)" >&2
		exit 1
	fi
fi
