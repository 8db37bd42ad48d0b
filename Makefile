# clawbox: one non-recursive Makefile.
#   make                                  build clawbox, clawbox-proxy, clawbox-serve, clawbox-channel
#   make serve                            build, then run the daemon
#   make check                            unit + integration tests (as root: all of them)
#   make check SANITIZE=address,undefined the same under sanitizers
#   make bench                            sandbox, proxy, agent and daemon benchmarks
#   make fuzz                             the libFuzzer targets (clang)
#   make install [PREFIX=] [DESTDIR=]     install (make uninstall removes it)
#   make check-fresh                      build in a minimal Debian 12 (debootstrap)
#   make format                           clang-format every source file
#
# Layering (docs/ARCHITECTURE.md) is kept by include paths: src/base sees only itself,
# src/sandbox sees base, src/vm sees sandbox and json, src/cmd sees everything.

VERSION  := 0.1.0
CC       ?= gcc
BUILD    := build
SANITIZE ?=

WARN     := -Wall -Wextra -Wshadow -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes \
            -Wno-missing-field-initializers -Wno-format-truncation -Werror
CFLAGS   ?= -O2 -g
CFLAGS   += -std=gnu11 $(WARN) -D_GNU_SOURCE -D_FORTIFY_SOURCE=2 -fstack-protector-strong \
            -fPIE -include src/base/banned.h -DCLAWBOX_VERSION='"$(VERSION)"' -MMD -MP
LDFLAGS  += -Wl,-z,relro,-z,now
ifneq ($(SANITIZE),)
CFLAGS   += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS  += -pie -fsanitize=$(SANITIZE)
else
# Static: clawbox starts on every sandbox, and the dynamic loader's work is pure overhead
# there (it links nothing but libc and the agent's two libraries; the TLS-capable proxy is an
# executable of its own).
LDFLAGS  += -static-pie
endif

INC_base    := -Isrc/base
INC_sandbox := $(INC_base) -Isrc/sandbox
INC_agent   := $(INC_base) -Isrc/json -Isrc/agent
INC_vm      := $(INC_sandbox) -Isrc/json -Isrc/vm
INC_cmd     := $(INC_sandbox) -Isrc/json -Isrc/agent -Isrc/vm -Isrc/cmd
# The daemon (clawbox-serve) is an executable of its own: only it links these.
SERVE_PKGS  := libevent sqlite3 jansson libcrypto
INC_store   := $(INC_base) -Isrc/json -Isrc/store
INC_ipc     := $(INC_base) -Isrc/json -Isrc/ipc $(shell pkg-config --cflags jansson 2>/dev/null)
INC_daemon  := $(INC_store) -Isrc/ipc -Isrc/daemon $(shell pkg-config --cflags $(SERVE_PKGS) 2>/dev/null)
LIBS_serve   = $(shell pkg-config --libs $(SERVE_PKGS))
# The agent runs inside every sandbox: JSON and HTTP parsing, linked statically into
# clawbox (no libcurl, no TLS: the proxy does that).
LIBS_agent  := -ljansson -lhttp_parser
# The egress proxy is its own executable (clawbox-proxy): only it links these.
PROXY_PKGS  := libevent libevent_openssl openssl jansson libidn2 libcurl libseccomp
INC_proxy   := $(INC_base) -Isrc/proxy $(shell pkg-config --cflags $(PROXY_PKGS) 2>/dev/null)
LIBS_proxy   = $(shell pkg-config --libs $(PROXY_PKGS)) -lhttp_parser

# The channels (clawbox-channel KIND): one executable, a process per configured channel, with
# the libraries the channels talk to their services with. A channel that needs one more adds
# it here (and to scripts/deps.sh).
CHANNEL_PKGS := libevent jansson libcurl
# webhooks: HMAC-SHA256 and constant-time compares (OpenSSL's libcrypto)
CHANNEL_PKGS += libcrypto
# email: MIME by GMime, HTML mail read as text by libxml2's HTML parser
CHANNEL_PKGS += gmime-3.0 libxml-2.0
# xmpp: libstrophe (XML streams, TLS, SASL, stream management)
CHANNEL_PKGS += libstrophe
# Recursive (=), not :=: pkg-config is asked when a channel file is compiled, after
# scripts/deps.sh installed the packages (on a fresh machine GMime and libxml2 are not there
# when make reads this file, and their headers are not in /usr/include itself).
INC_channels  = $(INC_ipc) -Isrc/channels $(shell pkg-config --cflags $(CHANNEL_PKGS) 2>/dev/null)
LIBS_channel  = $(shell pkg-config --libs $(CHANNEL_PKGS))
# Slack's and Discord's sockets (src/channels/ws.c): TLS by libevent's OpenSSL bufferevent,
# WebSocket framing by wslay (Debian ships no .pc for it), the upgrade answer by http-parser.
CHANNEL_PKGS += libevent_openssl openssl
LIBS_channel += -lwslay -lhttp_parser

BASE_SRC    := $(wildcard src/base/*.c)
IPC_SRC     := $(wildcard src/ipc/*.c)
CHANNEL_SRC := $(wildcard src/channels/*.c)
SANDBOX_SRC := $(wildcard src/sandbox/*.c)
PROXY_SRC   := $(wildcard src/proxy/*.c)
AGENT_SRC   := $(wildcard src/agent/*.c)
STORE_SRC   := $(wildcard src/store/*.c)
DAEMON_SRC  := $(wildcard src/daemon/*.c)
VM_SRC      := $(wildcard src/vm/*.c)
CMD_SRC     := $(filter-out src/cmd/proxy-main.c src/cmd/serve-main.c src/cmd/channel-main.c,$(wildcard src/cmd/*.c))
GEN_SRC     := $(BUILD)/gen/seccomp-bpf.c

BASE_OBJ    := $(BASE_SRC:%.c=$(BUILD)/%.o)
IPC_OBJ     := $(IPC_SRC:%.c=$(BUILD)/%.o)
CHANNEL_OBJ := $(CHANNEL_SRC:%.c=$(BUILD)/%.o)
SANDBOX_OBJ := $(SANDBOX_SRC:%.c=$(BUILD)/%.o) $(BUILD)/gen/seccomp-bpf.o
CMD_OBJ     := $(CMD_SRC:%.c=$(BUILD)/%.o)
PROXY_OBJ   := $(PROXY_SRC:%.c=$(BUILD)/%.o)
AGENT_OBJ   := $(AGENT_SRC:%.c=$(BUILD)/%.o)
STORE_OBJ   := $(STORE_SRC:%.c=$(BUILD)/%.o)
DAEMON_OBJ  := $(DAEMON_SRC:%.c=$(BUILD)/%.o) $(BUILD)/gen/web.o
VM_OBJ      := $(VM_SRC:%.c=$(BUILD)/%.o)
WEB_FILES   := src/daemon/web/index.html $(BUILD)/web/app.js src/daemon/web/style.css

UNIT_SRC    := $(wildcard tests/unit/test-*.c)
PROXY_UNIT  := $(wildcard tests/unit/test-proxy-*.c)
DAEMON_UNIT := tests/unit/test-cron.c tests/unit/test-envs.c tests/unit/test-policy.c \
               tests/unit/test-mountlist.c tests/unit/test-hostact.c tests/unit/test-config.c \
               tests/unit/test-store.c tests/unit/test-taint.c
UNIT_BIN    := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
PROXY_UNIT_BIN := $(PROXY_UNIT:tests/unit/%.c=$(BUILD)/tests/%)
DAEMON_UNIT_BIN := $(DAEMON_UNIT:tests/unit/%.c=$(BUILD)/tests/%)
CHANNEL_UNIT_BIN := $(BUILD)/tests/test-email-msg
IPC_UNIT_BIN   := $(BUILD)/tests/test-channel-proto
CORE_UNIT_BIN  := $(filter-out $(PROXY_UNIT_BIN) $(DAEMON_UNIT_BIN) $(IPC_UNIT_BIN) $(CHANNEL_UNIT_BIN),$(UNIT_BIN))
PROBE       := $(BUILD)/tests/probe
HTTPD       := $(BUILD)/tests/httpd
FAKE_MODEL  := $(BUILD)/tests/fake-model
FAKE_TG     := $(BUILD)/tests/fake-telegram

.PHONY: fuzz-channels-ws
.PHONY: all check unit lint check-fresh install uninstall man bench format clean deps test-deps bench-deps demo serve guest fuzz FORCE
all: clawbox clawbox-proxy clawbox-serve clawbox-channel

deps:
	@scripts/deps.sh build
test-deps:
	@scripts/deps.sh test
bench-deps:
	@scripts/deps.sh bench

$(BUILD)/.deps-ok: scripts/deps.sh
	@mkdir -p $(@D)
	@scripts/deps.sh build
	@touch $@

# Objects depend on the flags they were built with: `make check SANITIZE=...` after a plain
# build rebuilds everything instead of linking stale objects.
FLAGS_NOW := $(CC) $(CFLAGS) $(LDFLAGS)
$(BUILD)/.flags: FORCE
	@mkdir -p $(@D)
	@if [ "$$(cat $@ 2>/dev/null)" != '$(FLAGS_NOW)' ]; then echo '$(FLAGS_NOW)' >$@; fi
FORCE:

clawbox: $(CMD_OBJ) $(VM_OBJ) $(SANDBOX_OBJ) $(AGENT_OBJ) $(BASE_OBJ)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LIBS_agent)

# The egress proxy: its own executable, dynamically linked against its libraries.
clawbox-proxy: $(BUILD)/src/cmd/proxy-main.o $(PROXY_OBJ) $(BASE_OBJ)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS) $(filter-out -static-pie,$(LDFLAGS)) -pie -o $@ $^ $(LIBS_proxy)
$(BUILD)/src/cmd/proxy-main.o: src/cmd/proxy-main.c $(BUILD)/.flags | $(BUILD)/.deps-ok
	@mkdir -p $(@D)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) $(INC_proxy) -c -o $@ $<

# The daemon: its own executable, dynamically linked against its libraries.
clawbox-serve: $(BUILD)/src/cmd/serve-main.o $(DAEMON_OBJ) $(STORE_OBJ) $(IPC_OBJ) $(BASE_OBJ)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS) $(filter-out -static-pie,$(LDFLAGS)) -pie -o $@ $^ $(LIBS_serve)
$(BUILD)/src/cmd/serve-main.o: src/cmd/serve-main.c $(BUILD)/.flags | $(BUILD)/.deps-ok
	@mkdir -p $(@D)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) $(INC_daemon) -c -o $@ $<
# The channels: their own executable (the daemon starts one process per channel).
clawbox-channel: $(BUILD)/src/cmd/channel-main.o $(CHANNEL_OBJ) $(IPC_OBJ) $(BASE_OBJ)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS) $(filter-out -static-pie,$(LDFLAGS)) -pie -o $@ $^ $(LIBS_channel)
$(BUILD)/src/cmd/channel-main.o: src/cmd/channel-main.c $(BUILD)/.flags | $(BUILD)/.deps-ok
	@mkdir -p $(@D)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) $(INC_channels) -c -o $@ $<
$(BUILD)/src/channels/%.o: src/channels/%.c $(BUILD)/.flags | $(BUILD)/.deps-ok
	@mkdir -p $(@D)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) $(INC_channels) -c -o $@ $<
$(BUILD)/src/ipc/%.o: src/ipc/%.c $(BUILD)/.flags | $(BUILD)/.deps-ok
	@mkdir -p $(@D)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) $(INC_ipc) -c -o $@ $<
# The chat page, compiled in (tools/embed.c).
$(BUILD)/embed: tools/embed.c
	@mkdir -p $(@D)
	@echo "  LD      $@"
	@$(CC) -O1 -std=gnu11 $(WARN) -o $@ $<
$(BUILD)/gen/web.c: $(BUILD)/embed $(WEB_FILES)
	@mkdir -p $(@D)
	@echo "  GEN     $@"
	@$(BUILD)/embed $@ /=src/daemon/web/index.html /app.js=$(BUILD)/web/app.js \
		/style.css=src/daemon/web/style.css
# The web app's script: its modules and the npm packages they import (web/package-lock.json)
# bundled by esbuild. npm runs only when the lock changed; after that the build is offline.
$(BUILD)/web/app.js: $(wildcard src/daemon/web/*.js) web/node_modules/.package-lock.json
	@mkdir -p $(@D)
	@echo "  WEB     $@ (the page's sources changed: esbuild)"
	@NODE_PATH=web/node_modules web/node_modules/.bin/esbuild src/daemon/web/app.js --bundle --minify --format=iife \
		--target=es2020 --legal-comments=none --log-level=warning --outfile=$@
web/node_modules/.package-lock.json: web/package.json web/package-lock.json | $(BUILD)/.deps-ok
	@echo "  NPM     web/node_modules (npm ci: not there yet, or web/package-lock.json changed)"
	@cd web && npm ci --prefer-offline --no-audit --no-fund --loglevel=error >/dev/null
	@touch $@
$(BUILD)/gen/web.o: $(BUILD)/gen/web.c $(BUILD)/.flags
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) $(INC_daemon) -c -o $@ $<
$(BUILD)/src/store/%.o: src/store/%.c $(BUILD)/.flags | $(BUILD)/.deps-ok
	@mkdir -p $(@D)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) $(INC_store) -c -o $@ $<
$(BUILD)/src/daemon/%.o: src/daemon/%.c $(BUILD)/.flags | $(BUILD)/.deps-ok
	@mkdir -p $(@D)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) $(INC_daemon) -c -o $@ $<

# The microVM's guest (issue 6, first step): Debian's kernel, uncompressed, and an initramfs
# whose /init is clawbox itself. Needs linux-image-amd64 (and qemu-system-x86 to boot it).
# The guest's clawbox must be static: under SANITIZE (a dynamic, instrumented clawbox) it is
# built again, plainly, in one compiler run.
GUEST := $(BUILD)/vm/vmlinux $(BUILD)/vm/initramfs.cpio
ifeq ($(SANITIZE),)
GUEST_CLAWBOX := clawbox
else
GUEST_CLAWBOX := $(BUILD)/vm/clawbox-static
$(GUEST_CLAWBOX): $(CMD_SRC) $(VM_SRC) $(SANDBOX_SRC) $(AGENT_SRC) $(BASE_SRC) $(GEN_SRC)
	@mkdir -p $(@D)
	@echo "  LD      $@"
	@$(CC) -O2 -std=gnu11 -D_GNU_SOURCE -fPIE -static-pie -include src/base/banned.h \
		-DCLAWBOX_VERSION='"$(VERSION)"' $(INC_cmd) -o $@ $^ $(LIBS_agent)
endif
guest: $(GUEST)
$(GUEST) &: $(GUEST_CLAWBOX) tools/mkguest.sh | test-deps
	@echo "  GUEST   $(BUILD)/vm"
	@tools/mkguest.sh $(BUILD)/vm $(GUEST_CLAWBOX)

# The README's first command: build, then run the daemon in the foreground.
serve: all
	./clawbox serve

# Build, then show a sandbox from the inside.
demo: clawbox
	./clawbox run -- sh -c 'echo "inside: $$(id)"; echo "hostname: $$(hostname)"; \
		echo "root folder: $$(ls / | tr "\n" " ")"; grep -E "^(Cap(Eff|Bnd)|NoNewPrivs|Seccomp):" /proc/self/status; \
		echo "processes: $$(ls /proc | grep -c "^[0-9]")"; echo "network: $$(ls /sys/class/net 2>/dev/null || cat /proc/net/dev | tail -n +3 | cut -d: -f1 | tr -d " ")"'

$(BUILD)/src/base/%.o: src/base/%.c $(BUILD)/.flags | $(BUILD)/.deps-ok
	@mkdir -p $(@D)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) $(INC_base) -c -o $@ $<
$(BUILD)/src/sandbox/%.o: src/sandbox/%.c $(BUILD)/.flags | $(BUILD)/.deps-ok
	@mkdir -p $(@D)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) $(INC_sandbox) -c -o $@ $<
$(BUILD)/src/proxy/%.o: src/proxy/%.c $(BUILD)/.flags | $(BUILD)/.deps-ok
	@mkdir -p $(@D)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) $(INC_proxy) -c -o $@ $<
$(BUILD)/src/agent/%.o: src/agent/%.c $(BUILD)/.flags | $(BUILD)/.deps-ok
	@mkdir -p $(@D)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) $(INC_agent) -c -o $@ $<
$(BUILD)/src/vm/%.o: src/vm/%.c $(BUILD)/.flags | $(BUILD)/.deps-ok
	@mkdir -p $(@D)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) $(INC_vm) -c -o $@ $<
$(BUILD)/src/cmd/%.o: src/cmd/%.c $(BUILD)/.flags | $(BUILD)/.deps-ok
	@mkdir -p $(@D)
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) $(INC_cmd) -c -o $@ $<

# The seccomp policy is compiled to BPF here, once, by a host tool linked with libseccomp.
$(BUILD)/gen-seccomp: tools/gen-seccomp.c src/sandbox/seccomp-policy.h | $(BUILD)/.deps-ok
	@mkdir -p $(@D)
	@echo "  LD      $@"
	@$(CC) -O1 -std=gnu11 $(WARN) -Isrc/sandbox $(shell pkg-config --cflags libseccomp) \
		-o $@ $< $(shell pkg-config --libs libseccomp)
$(GEN_SRC): $(BUILD)/gen-seccomp
	@mkdir -p $(@D)
	@echo "  GEN     $@"
	@$(BUILD)/gen-seccomp $@ 2>$(BUILD)/gen-seccomp.log || { cat $(BUILD)/gen-seccomp.log; exit 1; }
$(BUILD)/gen/seccomp-bpf.o: $(GEN_SRC) $(BUILD)/.flags
	@echo "  CC      $<"
	@$(CC) $(CFLAGS) $(INC_sandbox) -c -o $@ $<

# Tests
$(PROXY_UNIT_BIN): $(BUILD)/tests/%: tests/unit/%.c tests/unit/tap.h $(PROXY_OBJ) $(BASE_OBJ)
	@mkdir -p $(@D)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS) $(INC_proxy) -Itests/unit -o $@ $< $(PROXY_OBJ) $(BASE_OBJ) \
		$(filter-out -static-pie,$(LDFLAGS)) -pie $(LIBS_proxy)
$(DAEMON_UNIT_BIN): $(BUILD)/tests/%: tests/unit/%.c tests/unit/tap.h $(DAEMON_OBJ) $(STORE_OBJ) $(IPC_OBJ) $(BASE_OBJ)
	@mkdir -p $(@D)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS) $(INC_daemon) -Itests/unit -o $@ $< $(DAEMON_OBJ) $(STORE_OBJ) $(IPC_OBJ) $(BASE_OBJ) \
		$(filter-out -static-pie,$(LDFLAGS)) -pie $(LIBS_serve)
$(IPC_UNIT_BIN): $(BUILD)/tests/%: tests/unit/%.c tests/unit/tap.h $(IPC_OBJ) $(BASE_OBJ)
	@mkdir -p $(@D)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS) $(INC_ipc) -Itests/unit -o $@ $< $(IPC_OBJ) $(BASE_OBJ) \
		$(filter-out -static-pie,$(LDFLAGS)) -pie -ljansson
$(CORE_UNIT_BIN): $(BUILD)/tests/%: tests/unit/%.c tests/unit/tap.h $(SANDBOX_OBJ) $(AGENT_OBJ) $(BUILD)/src/vm/mux.o $(BASE_OBJ)
	@mkdir -p $(@D)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS) $(INC_cmd) -Isrc/json -Itests/unit $(LDFLAGS) -o $@ $< \
		$(filter-out $(BUILD)/src/sandbox/launch.o,$(SANDBOX_OBJ)) $(AGENT_OBJ) $(BUILD)/src/vm/mux.o $(BASE_OBJ) \
		$(LIBS_agent)

# The escape probe runs inside sandboxes (and --rootfs ones with no libc): static, no
# sanitizers, none of our flags that assume our own tree.
$(PROBE): tests/integration/probe.c
	@mkdir -p $(@D)
	@echo "  LD      $@"
	@$(CC) -O1 -std=gnu11 -Wall -Wextra -Werror -static -o $@ $<

# A real HTTP server for the proxy tests.
$(HTTPD): tests/integration/httpd.c
	@mkdir -p $(@D)
	@echo "  LD      $@"
	@$(CC) -O1 -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -o $@ $< \
		$(shell pkg-config --cflags --libs libevent libevent_openssl openssl)

# A model API for the agent tests: both wire protocols, scripted by scenario files.
$(FAKE_MODEL): tests/integration/fake-model.c
	@mkdir -p $(@D)
	@echo "  LD      $@"
	@$(CC) -O1 -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -o $@ $< \
		$(shell pkg-config --cflags --libs libevent jansson)

$(FAKE_TG): tests/integration/fake-telegram.c
	@mkdir -p $(@D)
	@echo "  LD      $@"
	@$(CC) -O1 -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -o $@ $< \
		$(shell pkg-config --cflags --libs libevent jansson)

# Fuzzing: `make fuzz` runs libFuzzer (clang) on the proxy's request reader for FUZZ_SECONDS
# and keeps what it finds in the corpus; `make check` replays the corpus (gcc, no libFuzzer).
FUZZ_SECONDS ?= 60
FUZZ_REPLAY := $(BUILD)/tests/fuzz-request-replay $(BUILD)/tests/fuzz-sse-replay \
               $(BUILD)/tests/fuzz-tool-args-replay $(BUILD)/tests/fuzz-model-replay \
               $(BUILD)/tests/fuzz-mux-replay $(BUILD)/tests/fuzz-tool-output-replay \
               $(BUILD)/tests/fuzz-rules-replay $(BUILD)/tests/fuzz-leak-replay \
               $(BUILD)/tests/fuzz-services-replay $(BUILD)/tests/fuzz-hostact-replay \
               $(BUILD)/tests/fuzz-meter-replay $(BUILD)/tests/fuzz-channel-proto-replay \
               $(BUILD)/tests/fuzz-telegram-replay
# Slack's and Discord's inbound parsers (src/channels/slack-in.c, discord-in.c): pure
# jansson, so their fuzzers link nothing else of the channels.
CHANNEL_WS_FUZZ := slack discord
FUZZ_REPLAY += $(CHANNEL_WS_FUZZ:%=$(BUILD)/tests/fuzz-%-replay)
$(CHANNEL_WS_FUZZ:%=$(BUILD)/tests/fuzz-%-replay): $(BUILD)/tests/fuzz-%-replay: tests/fuzz/replay.c \
		tests/fuzz/fuzz-%.c $(BUILD)/src/channels/%-in.o $(BUILD)/src/channels/textsplit.o
	@mkdir -p $(@D)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS) $(INC_channels) -DCORPUS_DIR='"tests/fuzz/corpus/$*"' -o $@ \
		tests/fuzz/replay.c tests/fuzz/fuzz-$*.c $(BUILD)/src/channels/$*-in.o \
		$(BUILD)/src/channels/textsplit.o $(LDFLAGS) -ljansson
fuzz: fuzz-channels-ws
bench: clawbox-channel
fuzz-channels-ws:
	@mkdir -p $(BUILD)/fuzz
	for t in $(CHANNEL_WS_FUZZ); do \
		clang -g -O1 -std=gnu11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
			-include src/base/banned.h $(INC_channels) -o $(BUILD)/fuzz/fuzz-$$t \
			tests/fuzz/fuzz-$$t.c src/channels/$$t-in.c src/channels/textsplit.c -ljansson && \
		$(BUILD)/fuzz/fuzz-$$t -max_total_time=$(FUZZ_SECONDS) -max_len=16384 \
			tests/fuzz/corpus/$$t || exit 1; \
	done
FUZZ_REPLAY += $(BUILD)/tests/fuzz-email-replay
AGENT_FUZZ  := tool-args model tool-output
$(AGENT_FUZZ:%=$(BUILD)/tests/fuzz-%-replay): $(BUILD)/tests/fuzz-%-replay: tests/fuzz/replay.c \
		tests/fuzz/fuzz-%.c $(AGENT_OBJ) $(BASE_OBJ)
	@mkdir -p $(@D)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS) $(INC_agent) -DCORPUS_DIR='"tests/fuzz/corpus/$*"' -o $@ \
		tests/fuzz/replay.c tests/fuzz/fuzz-$*.c $(AGENT_OBJ) $(BASE_OBJ) $(LDFLAGS) $(LIBS_agent)
$(BUILD)/tests/fuzz-sse-replay: tests/fuzz/replay.c tests/fuzz/fuzz-sse.c $(AGENT_OBJ) $(BASE_OBJ)
	@mkdir -p $(@D)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS) $(INC_agent) -DCORPUS_DIR='"tests/fuzz/corpus/sse"' -o $@ \
		tests/fuzz/replay.c tests/fuzz/fuzz-sse.c $(AGENT_OBJ) $(BASE_OBJ) $(LDFLAGS) $(LIBS_agent)
$(BUILD)/tests/fuzz-mux-replay: tests/fuzz/replay.c tests/fuzz/fuzz-mux.c $(BUILD)/src/vm/mux.o $(BASE_OBJ)
	@mkdir -p $(@D)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS) $(INC_vm) -DCORPUS_DIR='"tests/fuzz/corpus/mux"' -o $@ \
		tests/fuzz/replay.c tests/fuzz/fuzz-mux.c $(BUILD)/src/vm/mux.o $(BASE_OBJ) $(LDFLAGS)
$(BUILD)/tests/fuzz-request-replay: tests/fuzz/replay.c tests/fuzz/fuzz-request.c $(PROXY_OBJ) $(BASE_OBJ)
	@mkdir -p $(@D)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS) $(INC_proxy) -o $@ tests/fuzz/replay.c tests/fuzz/fuzz-request.c \
		$(PROXY_OBJ) $(BASE_OBJ) $(filter-out -static-pie,$(LDFLAGS)) -pie $(LIBS_proxy)
$(BUILD)/tests/fuzz-leak-replay: tests/fuzz/replay.c tests/fuzz/fuzz-leak.c $(BUILD)/src/proxy/leak.o
	@mkdir -p $(@D)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS) $(INC_proxy) -DCORPUS_DIR='"tests/fuzz/corpus/leak"' -o $@ \
		tests/fuzz/replay.c tests/fuzz/fuzz-leak.c $(BUILD)/src/proxy/leak.o $(LDFLAGS)
$(BUILD)/tests/fuzz-meter-replay: tests/fuzz/replay.c tests/fuzz/fuzz-meter.c $(PROXY_OBJ) $(BASE_OBJ)
	@mkdir -p $(@D)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS) $(INC_proxy) -DCORPUS_DIR='"tests/fuzz/corpus/meter"' -o $@ \
		tests/fuzz/replay.c tests/fuzz/fuzz-meter.c \
		$(PROXY_OBJ) $(BASE_OBJ) $(filter-out -static-pie,$(LDFLAGS)) -pie $(LIBS_proxy)
$(BUILD)/tests/fuzz-rules-replay: tests/fuzz/replay.c tests/fuzz/fuzz-rules.c $(PROXY_OBJ) $(BASE_OBJ)
	@mkdir -p $(@D)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS) $(INC_proxy) -DCORPUS_DIR='"tests/fuzz/corpus/rules"' -o $@ \
		tests/fuzz/replay.c tests/fuzz/fuzz-rules.c \
		$(PROXY_OBJ) $(BASE_OBJ) $(filter-out -static-pie,$(LDFLAGS)) -pie $(LIBS_proxy)
$(BUILD)/tests/fuzz-services-replay: tests/fuzz/replay.c tests/fuzz/fuzz-services.c $(PROXY_OBJ) $(BASE_OBJ)
	@mkdir -p $(@D)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS) $(INC_proxy) -DCORPUS_DIR='"tests/fuzz/corpus/services"' -o $@ \
		tests/fuzz/replay.c tests/fuzz/fuzz-services.c \
		$(PROXY_OBJ) $(BASE_OBJ) $(filter-out -static-pie,$(LDFLAGS)) -pie $(LIBS_proxy)
# The email channel's MIME side: its unit test and the inbound parser's corpus.
EMAIL_MSG_OBJ := $(BUILD)/src/channels/email-msg.o $(BUILD)/src/base/text.o $(BUILD)/src/base/dbuf.o
$(CHANNEL_UNIT_BIN): $(BUILD)/tests/%: tests/unit/%.c tests/unit/tap.h $(EMAIL_MSG_OBJ)
	@mkdir -p $(@D)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS) $(INC_channels) -Itests/unit -o $@ $< $(EMAIL_MSG_OBJ) \
		$(filter-out -static-pie,$(LDFLAGS)) -pie $(LIBS_channel)
$(BUILD)/tests/fuzz-email-replay: tests/fuzz/replay.c tests/fuzz/fuzz-email.c $(EMAIL_MSG_OBJ)
	@mkdir -p $(@D)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS) $(INC_channels) -DCORPUS_DIR='"tests/fuzz/corpus/email"' -o $@ \
		tests/fuzz/replay.c tests/fuzz/fuzz-email.c $(EMAIL_MSG_OBJ) \
		$(filter-out -static-pie,$(LDFLAGS)) -pie $(LIBS_channel)
$(BUILD)/tests/fuzz-channel-proto-replay: tests/fuzz/replay.c tests/fuzz/fuzz-channel-proto.c $(IPC_OBJ) $(BASE_OBJ)
	@mkdir -p $(@D)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS) $(INC_ipc) -DCORPUS_DIR='"tests/fuzz/corpus/channel-proto"' -o $@ \
		tests/fuzz/replay.c tests/fuzz/fuzz-channel-proto.c $(IPC_OBJ) $(BASE_OBJ) \
		$(filter-out -static-pie,$(LDFLAGS)) -pie -ljansson
$(BUILD)/tests/fuzz-telegram-replay: tests/fuzz/replay.c tests/fuzz/fuzz-telegram.c $(BUILD)/src/channels/telegram-parse.o \
		$(BUILD)/src/channels/chanlib.o $(IPC_OBJ) $(BASE_OBJ)
	@mkdir -p $(@D)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS) $(INC_channels) -DCORPUS_DIR='"tests/fuzz/corpus/telegram"' -o $@ \
		tests/fuzz/replay.c tests/fuzz/fuzz-telegram.c $(BUILD)/src/channels/telegram-parse.o \
		$(BUILD)/src/channels/chanlib.o $(IPC_OBJ) $(BASE_OBJ) \
		$(filter-out -static-pie,$(LDFLAGS)) -pie $(LIBS_channel)
$(BUILD)/tests/fuzz-hostact-replay: tests/fuzz/replay.c tests/fuzz/fuzz-hostact.c $(DAEMON_OBJ) $(STORE_OBJ) $(IPC_OBJ) $(BASE_OBJ)
	@mkdir -p $(@D)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS) $(INC_daemon) -DCORPUS_DIR='"tests/fuzz/corpus/hostact"' -o $@ \
		tests/fuzz/replay.c tests/fuzz/fuzz-hostact.c $(DAEMON_OBJ) $(STORE_OBJ) $(IPC_OBJ) $(BASE_OBJ) \
		$(filter-out -static-pie,$(LDFLAGS)) -pie $(LIBS_serve)
fuzz: $(BUILD)/gen/web.c
	@mkdir -p $(BUILD)/fuzz
	clang -g -O1 -std=gnu11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
		-include src/base/banned.h -DCLAWBOX_VERSION='"fuzz"' $(INC_daemon) -o $(BUILD)/fuzz/fuzz-hostact \
		tests/fuzz/fuzz-hostact.c $(DAEMON_SRC) $(BUILD)/gen/web.c $(STORE_SRC) $(IPC_SRC) $(BASE_SRC) $(LIBS_serve)
	$(BUILD)/fuzz/fuzz-hostact -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
		tests/fuzz/corpus/hostact
	clang -g -O1 -std=gnu11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
		$(INC_ipc) -o $(BUILD)/fuzz/fuzz-channel-proto tests/fuzz/fuzz-channel-proto.c \
		src/ipc/channel-proto.c src/base/fd-util.c -ljansson
	$(BUILD)/fuzz/fuzz-channel-proto -max_total_time=$(FUZZ_SECONDS) -max_len=70000 \
		tests/fuzz/corpus/channel-proto
	clang -g -O1 -std=gnu11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
		$(INC_channels) -o $(BUILD)/fuzz/fuzz-telegram tests/fuzz/fuzz-telegram.c \
		src/channels/telegram-parse.c src/channels/chanlib.c src/ipc/channel-proto.c \
		$(BASE_SRC) $(LIBS_channel)
	$(BUILD)/fuzz/fuzz-telegram -max_total_time=$(FUZZ_SECONDS) -max_len=16384 \
		tests/fuzz/corpus/telegram
	clang -g -O1 -std=gnu11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
		$(INC_channels) -o $(BUILD)/fuzz/fuzz-email tests/fuzz/fuzz-email.c \
		src/channels/email-msg.c src/base/text.c src/base/dbuf.c $(LIBS_channel)
	$(BUILD)/fuzz/fuzz-email -max_total_time=$(FUZZ_SECONDS) -max_len=65536 tests/fuzz/corpus/email
	clang -g -O1 -std=gnu11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
		$(INC_proxy) -o $(BUILD)/fuzz/fuzz-services tests/fuzz/fuzz-services.c \
		src/proxy/services.c src/proxy/leak.c src/proxy/upstream.c src/proxy/request.c \
		src/proxy/hostname.c src/proxy/allowlist.c src/proxy/rules.c src/proxy/model-fence.c \
		src/base/parse.c src/base/fd-util.c $(LIBS_proxy)
	$(BUILD)/fuzz/fuzz-services -max_total_time=$(FUZZ_SECONDS) -max_len=8192 \
		tests/fuzz/corpus/services
	clang -g -O1 -std=gnu11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
		-Isrc/base -Isrc/proxy -o $(BUILD)/fuzz/fuzz-leak tests/fuzz/fuzz-leak.c src/proxy/leak.c
	$(BUILD)/fuzz/fuzz-leak -max_total_time=$(FUZZ_SECONDS) -max_len=4096 tests/fuzz/corpus/leak
	clang -g -O1 -std=gnu11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
		$(INC_proxy) -o $(BUILD)/fuzz/fuzz-rules tests/fuzz/fuzz-rules.c \
		src/proxy/rules.c src/proxy/model-fence.c src/proxy/request.c src/proxy/hostname.c \
		src/proxy/allowlist.c src/base/parse.c $(LIBS_proxy)
	$(BUILD)/fuzz/fuzz-rules -max_total_time=$(FUZZ_SECONDS) -max_len=4096 tests/fuzz/corpus/rules
	clang -g -O1 -std=gnu11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
		$(INC_proxy) -o $(BUILD)/fuzz/fuzz-meter tests/fuzz/fuzz-meter.c \
		src/proxy/meter.c src/base/sse.c $(LIBS_proxy)
	$(BUILD)/fuzz/fuzz-meter -max_total_time=$(FUZZ_SECONDS) -max_len=65536 tests/fuzz/corpus/meter
	clang -g -O1 -std=gnu11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
		$(INC_proxy) -o $(BUILD)/fuzz/fuzz-request tests/fuzz/fuzz-request.c \
		src/proxy/request.c src/proxy/hostname.c src/proxy/allowlist.c src/proxy/addr.c \
		src/proxy/rules.c src/base/parse.c src/base/fd-util.c $(LIBS_proxy)
	$(BUILD)/fuzz/fuzz-request -max_total_time=$(FUZZ_SECONDS) -max_len=8192 \
		tests/fuzz/corpus/request
	clang -g -O1 -std=gnu11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
		$(INC_agent) -o $(BUILD)/fuzz/fuzz-sse tests/fuzz/fuzz-sse.c src/base/sse.c
	$(BUILD)/fuzz/fuzz-sse -max_total_time=$(FUZZ_SECONDS) -max_len=65536 tests/fuzz/corpus/sse
	clang -g -O1 -std=gnu11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
		$(INC_vm) -o $(BUILD)/fuzz/fuzz-mux tests/fuzz/fuzz-mux.c src/vm/mux.c src/base/dbuf.c
	$(BUILD)/fuzz/fuzz-mux -max_total_time=$(FUZZ_SECONDS) -max_len=61440 tests/fuzz/corpus/mux
	for t in $(AGENT_FUZZ); do \
		clang -g -O1 -std=gnu11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
			-include src/base/banned.h $(INC_agent) -o $(BUILD)/fuzz/fuzz-$$t tests/fuzz/fuzz-$$t.c \
			$(AGENT_SRC) $(BASE_SRC) $(LIBS_agent) && \
		$(BUILD)/fuzz/fuzz-$$t -max_total_time=$(FUZZ_SECONDS) -max_len=16384 \
			tests/fuzz/corpus/$$t || exit 1; \
	done

# The Matrix and webhook channels' inbound parsers: replayed in `make check`, fuzzed by
# `make fuzz` (as a prerequisite of its own, fuzz-mx).
FUZZ_REPLAY += $(BUILD)/tests/fuzz-matrix-sync-replay $(BUILD)/tests/fuzz-webhook-replay
$(BUILD)/tests/fuzz-matrix-sync-replay: tests/fuzz/replay.c tests/fuzz/fuzz-matrix-sync.c \
		$(BUILD)/src/channels/matrix-sync.o
	@mkdir -p $(@D)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS) $(INC_channels) -DCORPUS_DIR='"tests/fuzz/corpus/matrix-sync"' -o $@ \
		tests/fuzz/replay.c tests/fuzz/fuzz-matrix-sync.c $(BUILD)/src/channels/matrix-sync.o \
		$(filter-out -static-pie,$(LDFLAGS)) -pie $(LIBS_channel)
$(BUILD)/tests/fuzz-webhook-replay: tests/fuzz/replay.c tests/fuzz/fuzz-webhook.c \
		$(BUILD)/src/channels/webhook-req.o
	@mkdir -p $(@D)
	@echo "  LD      $@"
	@$(CC) $(CFLAGS) $(INC_channels) -DCORPUS_DIR='"tests/fuzz/corpus/webhook"' -o $@ \
		tests/fuzz/replay.c tests/fuzz/fuzz-webhook.c $(BUILD)/src/channels/webhook-req.o \
		$(filter-out -static-pie,$(LDFLAGS)) -pie $(LIBS_channel)
.PHONY: fuzz-mx
fuzz: fuzz-mx
fuzz-mx:
	@mkdir -p $(BUILD)/fuzz
	clang -g -O1 -std=gnu11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
		$(INC_channels) -o $(BUILD)/fuzz/fuzz-matrix-sync tests/fuzz/fuzz-matrix-sync.c \
		src/channels/matrix-sync.c $(LIBS_channel)
	$(BUILD)/fuzz/fuzz-matrix-sync -max_total_time=$(FUZZ_SECONDS) -max_len=16384 \
		tests/fuzz/corpus/matrix-sync
	clang -g -O1 -std=gnu11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined \
		$(INC_channels) -o $(BUILD)/fuzz/fuzz-webhook tests/fuzz/fuzz-webhook.c \
		src/channels/webhook-req.c $(LIBS_channel)
	$(BUILD)/fuzz/fuzz-webhook -max_total_time=$(FUZZ_SECONDS) -max_len=8192 \
		tests/fuzz/corpus/webhook

# Man pages, from the commands' own --help texts (tools/mkman.sh).
MAN_DIR := $(BUILD)/man
man: $(MAN_DIR)/clawbox.1
$(MAN_DIR)/clawbox.1: clawbox clawbox-proxy clawbox-serve tools/mkman.sh
	@echo "  MAN     $(MAN_DIR)"
	@tools/mkman.sh $(MAN_DIR)

# make install [PREFIX=/usr/local] [DESTDIR=...]: the executables, the guest (if built), man
# pages, completions, systemd units (tools/install.sh); make uninstall removes them.
PREFIX  ?= /usr/local
install: all man
	@DESTDIR='$(DESTDIR)' PREFIX='$(PREFIX)' tools/install.sh install
uninstall:
	@DESTDIR='$(DESTDIR)' PREFIX='$(PREFIX)' tools/install.sh uninstall

# The build on a minimal Debian 12 (debootstrap, cached in build/fresh): the README's first
# command must work there, with nothing installed but what it installs.
check-fresh: test-deps
	@tests/fresh/check-fresh.sh

# make lint: shellcheck on every shell script (.shellcheckrc) and clang-tidy's bug-prone
# checks on every C source (.clang-tidy), each folder with its own include path.
LINT_SH  := $(wildcard tests/*.sh tests/*/*.sh scripts/*.sh bench/*.sh tools/*.sh) .ci/run
LINT_INC  = $(addprefix -I,$(wildcard src/*)) -I$(BUILD)/gen $(sort $(INC_daemon) $(INC_proxy) $(INC_channels))
lint: test-deps $(BUILD)/gen/seccomp-bpf.c
	@echo "  LINT    shellcheck ($(words $(LINT_SH)) scripts)"
	@shellcheck -S warning -f gcc $(LINT_SH)
	@echo "  LINT    clang-tidy"
	@clang-tidy --quiet $(filter-out $(BUILD)/%,$(wildcard src/*/*.c)) -- -std=gnu11 \
		-D_GNU_SOURCE -include src/base/banned.h -DCLAWBOX_VERSION='"lint"' $(LINT_INC) \
		2>&1 | grep -E 'warning:|error:' && exit 1 || true

# make unit: the unit tests and the fuzz corpora's replays only, in seconds.
unit: $(UNIT_BIN) $(FUZZ_REPLAY)
	@UNIT_ONLY=1 tests/run-tests.sh $(UNIT_BIN) $(FUZZ_REPLAY)

check: lint clawbox clawbox-proxy clawbox-serve clawbox-channel man $(GUEST) $(UNIT_BIN) $(FUZZ_REPLAY) $(PROBE) $(HTTPD) $(FAKE_MODEL) $(FAKE_TG) test-deps
	@tests/run-tests.sh $(UNIT_BIN) $(FUZZ_REPLAY)

bench: clawbox clawbox-proxy clawbox-serve clawbox-channel $(GUEST) $(HTTPD) $(FAKE_MODEL) $(BUILD)/tests/test-policy $(BUILD)/tests/test-taint $(BUILD)/tests/test-proxy-egress bench-deps
	@bench/bench-policy.sh
	@bench/bench-channels-ws.sh
	@bench/bench-sandbox.sh
	@bench/bench-proxy.sh
	@bench/bench-intercept.sh
	@bench/bench-agent.sh
	@bench/bench-daemon.sh
	@bench/bench-engines.sh
	@bench/bench-vm.sh
	@bench/bench-web.sh
	@bench/bench-envs.sh
	@bench/bench-email.sh
	@bench/bench-xmpp.sh

format:
	clang-format -i $(BASE_SRC) $(SANDBOX_SRC) $(PROXY_SRC) $(AGENT_SRC) $(STORE_SRC) $(DAEMON_SRC) $(VM_SRC) $(IPC_SRC) $(CHANNEL_SRC) $(wildcard src/cmd/*.c) $(wildcard src/*/*.h) \
		tools/*.c $(UNIT_SRC) tests/unit/*.h tests/integration/*.c

clean:
	rm -rf $(BUILD) clawbox clawbox-proxy clawbox-serve clawbox-channel

# (not build/fresh: a Debian tree, whose rc2.d and the like are folders)
-include $(shell find $(BUILD) -path $(BUILD)/fresh -prune -o -name '*.d' -type f -print 2>/dev/null)
