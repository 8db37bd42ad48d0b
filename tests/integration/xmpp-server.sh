# shellcheck shell=bash
# xmpp-server.sh: a real Prosody (Debian's) for the XMPP channel's tests, an instance of
# its own in $XMPP_DIR (config, data, log, certificate from a CA of the test's own) on a
# loopback port: VirtualHost "localhost" (users made by prosodyctl: bot, alice, mallory,
# password "pw-<name>"), a MUC service "conference.localhost" and an XEP-0363 upload
# service "upload.localhost" (mod_http_file_share, at most 1 MB a file) whose HTTP is on
# loopback port $XMPP_HTTP_PORT. Sourced after lib.sh;
# start_prosody sets XMPP_PORT and XMPP_CA; cleanup_prosody stops it.

XMPP_DIR=$WORK/prosody
PROSODY_PID=

xmpp_free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 30000))
		ss -Hltn "sport = :$p" | grep -q . || { echo "$p"; return; }
	done
}

start_prosody() {
	local d=$XMPP_DIR u
	mkdir -p "$d/data" "$d/tls"
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=clawbox-test-ca \
		-keyout "$d/tls/ca.key" -out "$d/tls/ca.pem" 2>/dev/null
	openssl req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout "$d/tls/key.pem" \
		-out "$d/tls/req.pem" 2>/dev/null
	printf 'subjectAltName=DNS:localhost,DNS:conference.localhost\n' >"$d/tls/ext"
	openssl x509 -req -in "$d/tls/req.pem" -CA "$d/tls/ca.pem" -CAkey "$d/tls/ca.key" \
		-CAcreateserial -days 2 -extfile "$d/tls/ext" -out "$d/tls/cert.pem" 2>/dev/null
	XMPP_CA=$d/tls/ca.pem
	XMPP_PORT=$(xmpp_free_port)
	XMPP_HTTP_PORT=$(xmpp_free_port)
	cat >"$d/prosody.cfg.lua" <<CF
pidfile = "$d/prosody.pid"
data_path = "$d/data"
log = { { levels = { min = "info" }, to = "file", filename = "$d/prosody.log" } }
interfaces = { "127.0.0.1" }
c2s_ports = { $XMPP_PORT }
c2s_direct_tls_ports = { }
s2s_ports = { }
http_ports = { $XMPP_HTTP_PORT }
http_interfaces = { "127.0.0.1" }
http_default_host = "upload.localhost"
https_ports = { }
modules_enabled = { "roster", "saslauth", "tls", "disco", "ping", "offline", "smacks" }
modules_disabled = { "s2s" }
authentication = "internal_hashed"
storage = "internal"
c2s_require_encryption = true
allow_registration = false
certificates = "$d/tls"
ssl = { certificate = "$d/tls/cert.pem", key = "$d/tls/key.pem" }
VirtualHost "localhost"
Component "conference.localhost" "muc"
	muc_room_locking = false
	restrict_room_creation = false
Component "upload.localhost" "http_file_share"
	http_external_url = "http://127.0.0.1:$XMPP_HTTP_PORT/"
	http_file_share_size_limit = 1048576
CF
	chown -R prosody:prosody "$d"
	for u in bot alice mallory; do
		prosodyctl --config "$d/prosody.cfg.lua" register "$u" localhost "pw-$u" \
			>>"$d/prosodyctl.log" 2>&1 || return 1
	done
	run_prosody
}

# run_prosody: (again) the instance start_prosody made, on the same port.
run_prosody() {
	# Prosody refuses to run as root: as its own user (Debian's package made it).
	setpriv --reuid prosody --regid prosody --init-groups \
		prosody -F --config "$XMPP_DIR/prosody.cfg.lua" >>"$XMPP_DIR/prosody.out" 2>&1 &
	PROSODY_PID=$!
	wait_until 10 sh -c "ss -Hltn 'sport = :$XMPP_PORT' | grep -q ."
}

cleanup_prosody() {
	[ -n "$PROSODY_PID" ] || return 0
	kill "$PROSODY_PID" 2>/dev/null
	local i
	for i in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$PROSODY_PID" 2>/dev/null || break; sleep 0.2; done
	PROSODY_PID=
}
