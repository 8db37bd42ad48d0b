# shellcheck shell=bash
# mail-servers.sh: real mail servers from Debian for the email channel's tests and bench,
# each an instance of its own in $MAIL_DIR (a folder under the test's $WORK) on loopback
# ports: Postfix (SMTP, STARTTLS) delivering into Maildirs that Dovecot serves over IMAP
# (STARTTLS), with a test CA of the test's own; Postfix takes SMTP AUTH from Dovecot's
# users. Sourced after lib.sh; start_mail_servers sets SMTP_PORT, IMAP_PORT, MAIL_CA and the PIDs that cleanup_mail_servers stops.
#   Domain example.test; mailboxes bot@, alice@, mallory@ (password "pw-<local part>").
#   mail_of USER: the Maildir folder of USER's new mail.

MAIL_DIR=$WORK/mail
MAIL_UID=65534 # nobody: Postfix's virtual agent and Dovecot both act as it on the Maildirs
MAIL_USERS="bot alice mallory"
PF_PID= DV_PID=

mail_of() { echo "$MAIL_DIR/boxes/$1@example.test/Maildir/new"; }

# free_port: a loopback port nothing listens on (ss is in iproute2, a test dependency).
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 30000))
		ss -Hltn "sport = :$p" | grep -q . || { echo "$p"; return; }
	done
}

mail_ca() {
	local d=$MAIL_DIR/tls
	mkdir -p "$d"
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=clawbox-test-ca \
		-keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
	openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout "$d/key.pem" \
		-out "$d/req.pem" 2>/dev/null
	printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$d/ext"
	openssl x509 -req -in "$d/req.pem" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
		-days 2 -extfile "$d/ext" -out "$d/cert.pem" 2>/dev/null
	chmod 644 "$d"/*.pem
	MAIL_CA=$d/ca.pem
}

start_postfix() {
	local c=$MAIL_DIR/postfix maps="" u
	mkdir -p "$c/queue" "$c/data"
	chown postfix "$c/data"
	for u in $MAIL_USERS; do maps="$maps $u@example.test=$u@example.test/Maildir/"; done
	cat >"$c/main.cf" <<CF
compatibility_level = 3.6
queue_directory = $c/queue
data_directory = $c/data
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.example.test
mydomain = example.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
smtpd_recipient_restrictions = permit_mynetworks, reject
virtual_mailbox_domains = example.test
virtual_mailbox_base = $MAIL_DIR/boxes
virtual_mailbox_maps = inline:{$maps }
virtual_uid_maps = static:$MAIL_UID
virtual_gid_maps = static:$MAIL_UID
virtual_minimum_uid = 100
alias_maps =
alias_database =
local_recipient_maps =
maillog_file = $c/maillog
maillog_file_prefixes = $MAIL_DIR
smtpd_tls_cert_file = $MAIL_DIR/tls/cert.pem
smtpd_tls_key_file = $MAIL_DIR/tls/key.pem
smtpd_tls_security_level = may
smtpd_banner = mx.example.test ESMTP
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = $MAIL_DIR/dovecot/run/auth-smtp
smtpd_tls_auth_only = yes
delay_warning_time = 0
biff = no
CF
	cat >"$c/master.cf" <<CF
127.0.0.1:$SMTP_PORT inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
virtual   unix  - n n - - virtual
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
CF
	postfix -c "$c" check >"$c/check.log" 2>&1 || { cat "$c/check.log" >&2; return 1; }
	/usr/lib/postfix/sbin/master -c "$c" -d >"$c/master.out" 2>&1 &
	PF_PID=$!
}

start_dovecot() {
	local c=$MAIL_DIR/dovecot u
	mkdir -p "$c/run" "$c/state"
	: >"$c/passwd"
	for u in $MAIL_USERS; do echo "$u@example.test:{PLAIN}pw-$u" >>"$c/passwd"; done
	chmod 644 "$c/passwd"
	cat >"$c/dovecot.conf" <<CF
instance_name = clawbox-test-$$
base_dir = $c/run
state_dir = $c/state
log_path = $c/log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <$MAIL_DIR/tls/cert.pem
ssl_key = <$MAIL_DIR/tls/key.pem
disable_plaintext_auth = yes
auth_mechanisms = plain
first_valid_uid = $MAIL_UID
mail_location = maildir:$MAIL_DIR/boxes/%u/Maildir
passdb {
  driver = passwd-file
  args = $c/passwd
}
userdb {
  driver = static
  args = uid=$MAIL_UID gid=$MAIL_UID home=$MAIL_DIR/boxes/%u
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $IMAP_PORT
  }
  inet_listener imaps {
    port = 0
  }
}
service auth {
  unix_listener auth-smtp {
    mode = 0666
  }
}
service anvil {
  chroot =
}
service imap-login {
  chroot =
}
CF
	run_dovecot
}

# stop_dovecot / run_dovecot: the IMAP server goes away and comes back (same folders, port).
run_dovecot() {
	dovecot -F -c "$MAIL_DIR/dovecot/dovecot.conf" >>"$MAIL_DIR/dovecot/dovecot.out" 2>&1 &
	DV_PID=$!
	wait_until 10 sh -c "ss -Hltn 'sport = :$IMAP_PORT' | grep -q ."
}
stop_dovecot() {
	kill "$DV_PID" 2>/dev/null
	local i
	for i in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$DV_PID" 2>/dev/null || break; sleep 0.2; done
	DV_PID=
}

start_mail_servers() {
	mkdir -p "$MAIL_DIR/boxes"
	chmod 755 "$MAIL_DIR"
	chown "$MAIL_UID:$MAIL_UID" "$MAIL_DIR/boxes"
	SMTP_PORT=$(free_port)
	IMAP_PORT=$(free_port)
	mail_ca
	start_postfix && start_dovecot || return 1
	wait_until 10 sh -c "ss -Hltn 'sport = :$SMTP_PORT' | grep -q . && ss -Hltn 'sport = :$IMAP_PORT' | grep -q ."
}

cleanup_mail_servers() {
	[ -n "$PF_PID" ] && kill "$PF_PID" 2>/dev/null
	[ -n "$DV_PID" ] && kill "$DV_PID" 2>/dev/null
	local i
	for i in 1 2 3 4 5 6 7 8 9 10; do
		{ [ -z "$PF_PID" ] || ! kill -0 "$PF_PID" 2>/dev/null; } &&
			{ [ -z "$DV_PID" ] || ! kill -0 "$DV_PID" 2>/dev/null; } && break
		sleep 0.2
	done
}

# send_mail FROM TO FILE: submits FILE over SMTP (STARTTLS) as the tests' mail client.
send_mail() {
	curl -s --ssl-reqd --cacert "$MAIL_CA" --url "smtp://127.0.0.1:$SMTP_PORT" \
		--mail-from "$1" --mail-rcpt "$2" --upload-file "$3"
}
