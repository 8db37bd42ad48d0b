#!/bin/sh
# env-build.sh: builds a group's package layer. Runs INSIDE the build sandbox (clawbox env
# starts it with `clawbox run`): unprivileged, the new layer folder mounted writable at
# /opt/clawbox-env (the path the layer is later seen at, which a venv records), the host's
# dpkg status read-only at /var/lib/dpkg/status (so apt fetches only what the host lacks:
# the layer lies over the host's /usr), egress only to the configured mirrors through the
# sandbox's proxy. Arguments: apt:NAME, npm:NAME, pip:NAME (validated by the host already).
# Mirrors come in the environment: CLAWBOX_APT_SOURCE (one sources.list line),
# CLAWBOX_NPM_REGISTRY, CLAWBOX_PIP_INDEX (URLs).
#
# Debian packages are resolved by apt with a private state folder and unpacked with
# dpkg-deb -x: their maintainer scripts are NOT run.
set -eu
OUT=/opt/clawbox-env
PROXY=http://127.0.0.1:3128
# The mirrors may be loopback addresses of the host: they must go through the proxy too
# (the sandbox's own loopback has nothing on it).
unset NO_PROXY no_proxy
export http_proxy=$PROXY https_proxy=$PROXY HTTP_PROXY=$PROXY HTTPS_PROXY=$PROXY

apt_pkgs= npm_pkgs= pip_pkgs=
for a in "$@"; do
	case $a in
	apt:*) apt_pkgs="$apt_pkgs ${a#apt:}" ;;
	npm:*) npm_pkgs="$npm_pkgs ${a#npm:}" ;;
	pip:*) pip_pkgs="$pip_pkgs ${a#pip:}" ;;
	*) echo "env-build: unknown package kind: $a" >&2; exit 2 ;;
	esac
done

W=$(mktemp -d /tmp/env-build.XXXXXX)
# apt reads its configuration folder before any -o: point it at ours from the start.
export APT_CONFIG="$W/apt.conf"
if [ -n "$apt_pkgs" ]; then
	mkdir -p "$W/etc/apt.conf.d" "$W/etc/preferences.d" "$W/etc/trusted.gpg.d" \
		"$W/state/lists/partial" "$W/cache/archives/partial"
	printf 'Dir::Etc "%s/etc";\n' "$W" >"$APT_CONFIG"
	printf '%s\n' "${CLAWBOX_APT_SOURCE:?no Debian mirror configured}" >"$W/etc/sources.list"
	set -- -q -o Dir::Etc="$W/etc" -o Dir::Etc::SourceList="$W/etc/sources.list" \
		-o Dir::Etc::SourceParts=/nonexistent -o Dir::State="$W/state" \
		-o Dir::Cache="$W/cache" -o Dir::State::status=/var/lib/dpkg/status \
		-o Debug::NoLocking=1 -o APT::Sandbox::User="$(id -un)" \
		-o Acquire::http::Proxy="$PROXY" -o Acquire::https::Proxy="$PROXY"
	apt-get "$@" update
	# shellcheck disable=SC2086
	apt-get "$@" -y --no-install-recommends --download-only install $apt_pkgs
	for deb in "$W"/cache/archives/*.deb; do
		[ -e "$deb" ] || continue
		echo "env-build: unpacking $(basename "$deb") (maintainer scripts not run)"
		dpkg-deb -x "$deb" "$OUT"
	done
fi
if [ -n "$npm_pkgs" ]; then
	# shellcheck disable=SC2086
	npm install -g --prefix "$OUT/npm" --cache "$W/npm-cache" --no-audit --no-fund \
		--registry "${CLAWBOX_NPM_REGISTRY:-https://registry.npmjs.org/}" \
		--proxy "$PROXY" --https-proxy "$PROXY" --noproxy '' $npm_pkgs
fi
if [ -n "$pip_pkgs" ]; then
	index=${CLAWBOX_PIP_INDEX:-https://pypi.org/simple/}
	host=${index#*://}
	host=${host%%/*}
	python3 -m venv "$OUT/venv"
	# shellcheck disable=SC2086
	"$OUT/venv/bin/pip" install -q --no-cache-dir --disable-pip-version-check \
		--proxy "$PROXY" --index-url "$index" --trusted-host "${host%%:*}" $pip_pkgs
fi
echo "env-build: done"
