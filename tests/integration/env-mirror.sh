#!/bin/bash
# env-mirror.sh DIR PORT ELSEWHERE_PORT: makes the files of local package registries in DIR
# (for test-envs.sh and bench/bench-envs.sh; serve DIR on 127.0.0.1:PORT): two .deb packages
# built with dpkg-deb (clawbox-hello, clawbox-second: /usr/bin/NAME, and a postinst that must
# never run) indexed by dpkg-scanpackages, an npm package made by `npm pack`, a wheel
# (env-mirror.py writes the npm metadata and the PyPI simple index).
set -eu
M=$1
SRC=$M/.src
mkdir -p "$M/deb" "$M/npm" "$M/pypi" "$SRC"
mkdeb() { # NAME TEXT
	local d=$SRC/$1
	mkdir -p "$d/DEBIAN" "$d/usr/bin"
	printf '#!/bin/sh\necho %s\n' "$2" >"$d/usr/bin/$1"
	printf 'Package: %s\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@example.org>\nDescription: test\n' "$1" >"$d/DEBIAN/control"
	printf '#!/bin/sh\ntouch /tmp/POSTINST-RAN\n' >"$d/DEBIAN/postinst"
	chmod 755 "$d/usr/bin/$1" "$d/DEBIAN/postinst"
	dpkg-deb -Zgzip --root-owner-group --build "$d" "$M/deb/$1_1.0_all.deb" >/dev/null
}
mkdeb clawbox-hello "hello from deb"
mkdeb clawbox-second "hello from second"
(cd "$M/deb" && dpkg-scanpackages -m . /dev/null >Packages 2>/dev/null)
N=$SRC/npm
mkdir -p "$N/bin"
printf '{"name":"clawbox-hello-npm","version":"1.0.0","bin":{"clawbox-hello-npm":"bin/hello.js"}}' >"$N/package.json"
printf '#!/usr/bin/env node\nconsole.log("hello from npm")\n' >"$N/bin/hello.js"
(cd "$M/npm" && HOME=$SRC npm pack "$N" --silent >/dev/null 2>&1)
/usr/bin/python3 "$(dirname "$0")/env-mirror.py" "$M" "$2" "$3"
