# c2a-worker: plain GNU make with pkg-config.
#   make                 build build/c2a-worker
#   make SANITIZE=1      ASan + UBSan build in build-san/
#   make check           unit tests (cmocka) and integration tests (pytest)
#   make fuzz            libFuzzer targets (clang) in build-fuzz/, each run FUZZ_SECONDS
#   make install PREFIX=/usr/local DESTDIR=   (SYSCONFDIR: /etc for PREFIX=/usr,
#                                              else PREFIX/etc); make uninstall
#   make CC=clang        any C11 compiler

PREFIX     ?= /usr/local
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
DESTDIR    ?=
CC         ?= cc
PYTHON     ?= /usr/bin/python3
PYTEST_ARGS ?=

# The master and the worker shell link only libevent and jansson. The job
# pipeline (AMQP, the engine's protocol, the commit thread) is a shared object
# each worker loads after fork, so the master never maps librabbitmq or OpenSSL;
# the speech engine (espeak-ng, the codecs) is another that only an engine child
# loads, so a worker's own process maps none of the audio stack.
PKGS        := libevent jansson
PIPE_PKGS   := libevent jansson librabbitmq libssl libcrypto
ENGINE_PKGS := jansson sndfile samplerate espeak-ng libcrypto libebur128
# HTTP support (libcurl, libxml2) is a second shared object, loaded by a worker
# only when a job needs it.
HTTP_PKGS := libevent jansson libcurl libxml-2.0
# TLS for the master's queue probe (amqps://) is a third: a relay process the
# master forks loads it, so OpenSSL (about 4 MB of RSS) stays out of the master.
TLS_PKGS  := libssl libcrypto
PKGLIBDIR ?= $(PREFIX)/lib/c2a-worker

ifeq ($(FUZZ),1)
# Set by `make fuzz` for its clang sub-make: every object carries the fuzzer's
# coverage instrumentation and the sanitizers; the targets add libFuzzer's main.
BUILD ?= build-fuzz
SANFLAGS := -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer \
            -fno-sanitize-recover=undefined
else ifeq ($(SANITIZE),1)
BUILD ?= build-san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
BUILD ?= build
SANFLAGS :=
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PIPE_PKGS) $(ENGINE_PKGS) $(HTTP_PKGS) $(TLS_PKGS))
PKG_LIBS   := $(shell pkg-config --libs $(PKGS))
PIPE_LIBS  := $(shell pkg-config --libs $(PIPE_PKGS)) -lpthread -ldl
ENGINE_LIBS := $(shell pkg-config --libs $(ENGINE_PKGS)) -lm
HTTP_LIBS  := $(shell pkg-config --libs $(HTTP_PKGS))
TLS_LIBS   := $(shell pkg-config --libs $(TLS_PKGS))

CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wno-missing-field-initializers -D_GNU_SOURCE -MMD -MP $(SANFLAGS) $(PKG_CFLAGS) \
           -DSYSCONFDIR='"$(SYSCONFDIR)"' -DPKGLIBDIR='"$(PKGLIBDIR)"' -fPIC
LDFLAGS += $(SANFLAGS) -Wl,--as-needed
LDLIBS  += $(PKG_LIBS) -ldl

COMMON_SRC := $(wildcard common/*.c)
SHELL_SRC  := worker/worker.c worker/app.c
HTTP_SRC   := worker/fetch.c worker/content.c worker/http_so.c
ENGINE_SRC := worker/synth_espeak.c worker/encode.c worker/normalize.c worker/voices.c \
              worker/tts_render.c worker/captions.c worker/leveler.c worker/cache.c worker/tags.c
NOAUDIO_SRC := worker/noaudio.c
PIPE_SRC   := $(filter-out $(SHELL_SRC) $(HTTP_SRC) $(ENGINE_SRC) $(NOAUDIO_SRC),$(wildcard worker/*.c))
TLS_SRC    := master/tls_relay.c
DAEMON_SRC := $(filter-out $(TLS_SRC),$(wildcard master/*.c)) $(SHELL_SRC)
COMMON_OBJ := $(COMMON_SRC:%.c=$(BUILD)/%.o)
DAEMON_OBJ := $(DAEMON_SRC:%.c=$(BUILD)/%.o)
PIPE_OBJ   := $(PIPE_SRC:%.c=$(BUILD)/%.o)
HTTP_OBJ   := $(HTTP_SRC:%.c=$(BUILD)/%.o)
ENGINE_OBJ := $(ENGINE_SRC:%.c=$(BUILD)/%.o)
TLS_OBJ    := $(TLS_SRC:%.c=$(BUILD)/%.o)
PIPELINE   := $(BUILD)/c2a-pipeline.so
HTTPLIB    := $(BUILD)/c2a-http.so
ENGINELIB  := $(BUILD)/c2a-engine.so $(BUILD)/c2a-noaudio.so
TLSLIB     := $(BUILD)/c2a-tls.so

UNIT_SRC   := $(wildcard tests/unit/test_*.c)
UNIT_BIN   := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
TEST_APPS  := $(patsubst tests/apps/%.c,$(BUILD)/tests/%.so,$(wildcard tests/apps/*.c))
TEST_TOOLS := $(BUILD)/tests/sfinfo $(BUILD)/tests/keepstderr.so $(BUILD)/tests/fsynctrace.so

BIN := $(BUILD)/c2a-worker
CTL := $(BUILD)/c2actl
CTL_LIBS := $(shell pkg-config --libs jansson librabbitmq libssl libcrypto libcurl)

.PHONY: all check unit integration install uninstall clean lint FORCE bench-tools fuzz fuzz-build fuzz-bin tools
all: $(BIN) $(PIPELINE) $(ENGINELIB) $(HTTPLIB) $(TLSLIB) $(CTL)

$(CTL): $(BUILD)/ctl/c2actl.o $(BUILD)/ctl/dead.o $(BUILD)/worker/amqp_open.o $(COMMON_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(CTL_LIBS)

# -rdynamic: the pipeline calls the binary's log and scoreboard functions.
$(BIN): $(DAEMON_OBJ) $(COMMON_OBJ)
	$(CC) $(LDFLAGS) -rdynamic -o $@ $^ $(LDLIBS) -lm

$(PIPELINE): $(PIPE_OBJ)
	$(CC) $(LDFLAGS) -shared -o $@ $^ $(PIPE_LIBS)

# Loaded with RTLD_LOCAL by an engine child, beside c2a-pipeline.so: what it
# needs of the pipeline's objects (the file names, job.c's helpers) it carries.
$(BUILD)/c2a-engine.so: $(ENGINE_OBJ) $(BUILD)/worker/outfile.o $(BUILD)/worker/job.o
	$(CC) $(LDFLAGS) -shared -o $@ $^ $(ENGINE_LIBS)

# Stands in for libpcaudio.so.0 in an engine child (see the file).
$(BUILD)/c2a-noaudio.so: $(BUILD)/worker/noaudio.o
	$(CC) $(LDFLAGS) -shared -Wl,-soname,libpcaudio.so.0 -o $@ $^

# job.o too: content.c strips control characters as job.c does.
$(HTTPLIB): $(HTTP_OBJ) $(BUILD)/worker/job.o
	$(CC) $(LDFLAGS) -shared -o $@ $^ $(HTTP_LIBS)

# The relay calls the binary's log and clock functions, as the pipeline does.
$(TLSLIB): $(TLS_OBJ)
	$(CC) $(LDFLAGS) -shared -o $@ $^ $(TLS_LIBS)

# The paths compiled in (the default configuration file, the last place to
# look for the plugins): a change of PREFIX, SYSCONFDIR or PKGLIBDIR, as with
# `make install PREFIX=/opt/c2a` after a plain `make`, rebuilds what uses them.
PATHS := PREFIX=$(PREFIX) SYSCONFDIR=$(SYSCONFDIR) PKGLIBDIR=$(PKGLIBDIR)
$(BUILD)/paths.stamp: FORCE
	@mkdir -p $(BUILD)
	@echo '$(PATHS)' | cmp -s - $@ || echo '$(PATHS)' > $@
FORCE:
$(BUILD)/common/config.o $(BUILD)/common/pkglib.o $(BUILD)/master/main.o: $(BUILD)/paths.stamp

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/test_%: tests/unit/test_%.c $(COMMON_OBJ) $(PIPE_OBJ) $(ENGINE_OBJ) $(HTTP_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(shell pkg-config --cflags cmocka) $(LDFLAGS) -o $@ \
		$(filter %.c %.o,$^) $(LDLIBS) $(PIPE_LIBS) $(ENGINE_LIBS) $(HTTP_LIBS) -lm \
		$(shell pkg-config --libs cmocka)

$(BUILD)/tests/%.so: tests/apps/%.c worker/c2a_app.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fPIC -shared -o $@ $(filter %.c,$^)

$(BUILD)/tests/sfinfo: tests/tools/sfinfo.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(shell pkg-config --libs sndfile) -lm

# Preloaded by the integration tests into a sanitizer build's processes, so it is
# built without sanitizers: see the file.
$(BUILD)/tests/keepstderr.so: tests/tools/keepstderr.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -g -std=c11 -Wall -Wextra -Werror -fPIC -shared -o $@ $< -ldl

# Preloaded by test_durability.py: traces fsync and rename (see the file).
$(BUILD)/tests/fsynctrace.so: tests/tools/fsynctrace.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -g -std=c11 -Wall -Wextra -Werror -fPIC -shared -o $@ $< -ldl

# Tools for espeak-ng itself (tests/tools/*.c say what they do); not built by all.
ESPEAK_TOOLS := $(BUILD)/tests/espeak_crash $(BUILD)/tests/voices_check
tools: $(ESPEAK_TOOLS)

$(BUILD)/tests/espeak_crash: tests/tools/espeak_crash.c $(BUILD)/worker/normalize.o $(COMMON_OBJ)
$(BUILD)/tests/voices_check: tests/tools/voices_check.c $(BUILD)/worker/voices.o $(COMMON_OBJ)
$(ESPEAK_TOOLS):
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(filter %.c %.o,$^) $(LDLIBS) \
		$(shell pkg-config --libs espeak-ng)

BENCH := $(BUILD)/bench/loadgen $(BUILD)/bench/inproc
bench-tools: $(BENCH)

$(BUILD)/bench/loadgen: bench/loadgen.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(shell pkg-config --libs librabbitmq)

$(BUILD)/bench/inproc: bench/inproc.c $(BUILD)/worker/encode.o $(BUILD)/worker/tags.o $(BUILD)/worker/outfile.o \
		$(BUILD)/worker/job.o $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(filter %.c %.o,$^) $(ENGINE_LIBS) $(LDLIBS)

# libFuzzer targets, one per tests/fuzz/fuzz_NAME.c, with the objects each one
# tests. `make fuzz` builds them with clang into build-fuzz/ and runs each for
# FUZZ_SECONDS on its seed corpus (tests/fuzz/corpus/NAME, read only); new
# inputs go to build-fuzz/corpus/NAME, the output to build-fuzz/log/, and a
# crash, leak or hang to build-fuzz/crash/: it fails the run (every target
# still runs). FUZZ_TARGETS picks some; FUZZ_FLAGS adds libFuzzer options.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_FLAGS   ?=
FUZZ_DIR     := build-fuzz
FUZZ_BIN     := $(FUZZ_TARGETS:%=$(BUILD)/fuzz/fuzz_%)
FUZZ_LIBS    := $(shell pkg-config --libs libevent jansson libxml-2.0) -lm

$(BUILD)/fuzz/fuzz_job: $(BUILD)/worker/job.o
$(BUILD)/fuzz/fuzz_tts: $(BUILD)/worker/tts_http.o
$(BUILD)/fuzz/fuzz_content: $(BUILD)/worker/content.o $(BUILD)/worker/job.o
$(BUILD)/fuzz/fuzz_tags: $(BUILD)/worker/tags.o
$(BUILD)/fuzz/fuzz_control: $(BUILD)/master/control_http.o $(BUILD)/master/status.o \
	$(BUILD)/master/status_html.o $(BUILD)/master/metrics.o $(BUILD)/master/history.o \
	$(BUILD)/master/dead_api.o
$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(COMMON_OBJ)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fsanitize=fuzzer $(LDFLAGS) -o $@ $(filter %.c %.o,$^) $(FUZZ_LIBS)

# fuzz-bin is the sub-make's part (FUZZ=1); fuzz-build alone only builds.
fuzz-bin: $(FUZZ_BIN)

fuzz-build:
	$(MAKE) FUZZ=1 CC=$(FUZZ_CC) BUILD=$(FUZZ_DIR) FUZZ_TARGETS="$(FUZZ_TARGETS)" fuzz-bin

fuzz: fuzz-build
	@rc=0; for t in $(FUZZ_TARGETS); do \
		mkdir -p $(FUZZ_DIR)/corpus/$$t $(FUZZ_DIR)/crash $(FUZZ_DIR)/log; \
		log=$(FUZZ_DIR)/log/fuzz_$$t.log; \
		echo "== fuzz_$$t: $(FUZZ_SECONDS) s (log: $$log)"; \
		if $(FUZZ_DIR)/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -timeout=25 \
			-artifact_prefix=$(FUZZ_DIR)/crash/fuzz_$$t- $(FUZZ_FLAGS) \
			$(FUZZ_DIR)/corpus/$$t tests/fuzz/corpus/$$t >$$log 2>&1; then \
			grep -E '^#[0-9]+[[:space:]]+DONE' $$log || true; \
		else \
			rc=1; tail -n 60 $$log; \
			echo "== fuzz_$$t FAILED; again: $(FUZZ_DIR)/fuzz/fuzz_$$t $(FUZZ_DIR)/crash/FILE"; \
		fi; \
	done; exit $$rc

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; ./$$t; done

integration: $(BIN) $(PIPELINE) $(ENGINELIB) $(HTTPLIB) $(TLSLIB) $(CTL) $(TEST_APPS) $(TEST_TOOLS)
	C2A_BIN=$(abspath $(BIN)) C2A_TEST_APPS=$(abspath $(BUILD)/tests) C2A_SANITIZE=$(SANITIZE) \
		$(PYTHON) -m pytest -q tests/integration $(PYTEST_ARGS)

check: all
	$(MAKE) unit
	$(MAKE) integration

lint:
	@for m in man/*.[0-9]; do mandoc -Tlint -Wwarning $$m || exit 1; done

install: $(BIN) $(PIPELINE) $(ENGINELIB) $(HTTPLIB) $(TLSLIB) $(CTL)
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PKGLIBDIR) $(DESTDIR)$(PREFIX)/share/man/man8 \
		$(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(PREFIX)/include/c2a \
		$(DESTDIR)$(SYSCONFDIR)/init.d $(DESTDIR)$(PREFIX)/lib/systemd/system
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/sbin/c2a-worker
	install -m 0755 $(CTL) $(DESTDIR)$(PREFIX)/bin/c2actl
	install -m 0644 man/c2actl.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 0644 $(PIPELINE) $(DESTDIR)$(PKGLIBDIR)/c2a-pipeline.so
	install -m 0644 $(BUILD)/c2a-engine.so $(DESTDIR)$(PKGLIBDIR)/c2a-engine.so
	install -m 0644 $(BUILD)/c2a-noaudio.so $(DESTDIR)$(PKGLIBDIR)/c2a-noaudio.so
	install -m 0644 $(HTTPLIB) $(DESTDIR)$(PKGLIBDIR)/c2a-http.so
	install -m 0644 $(TLSLIB) $(DESTDIR)$(PKGLIBDIR)/c2a-tls.so
	install -m 0644 man/c2a-worker.8 $(DESTDIR)$(PREFIX)/share/man/man8/
	install -m 0644 man/c2a-worker.conf.5 $(DESTDIR)$(PREFIX)/share/man/man5/
	install -m 0644 worker/c2a_app.h $(DESTDIR)$(PREFIX)/include/c2a/
	sed 's|@SBINDIR@|$(PREFIX)/sbin|g; s|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
		scripts/c2a-worker.init > $(DESTDIR)$(SYSCONFDIR)/init.d/c2a-worker
	chmod 0755 $(DESTDIR)$(SYSCONFDIR)/init.d/c2a-worker
	for u in c2a-worker.service c2a-worker@.service; do \
		sh scripts/mkunit.sh $$u $(PREFIX)/sbin $(SYSCONFDIR) \
			> $(DESTDIR)$(PREFIX)/lib/systemd/system/$$u || exit 1; done
	test -e $(DESTDIR)$(SYSCONFDIR)/c2a-worker.conf || \
		install -m 0640 conf/c2a-worker.conf $(DESTDIR)$(SYSCONFDIR)/c2a-worker.conf

# Everything install wrote but the configuration file, which may hold your
# changes and secrets: remove it yourself.
uninstall:
	rm -f $(DESTDIR)$(PREFIX)/sbin/c2a-worker $(DESTDIR)$(PREFIX)/bin/c2actl \
		$(DESTDIR)$(PREFIX)/share/man/man1/c2actl.1 \
		$(DESTDIR)$(PREFIX)/share/man/man8/c2a-worker.8 \
		$(DESTDIR)$(PREFIX)/share/man/man5/c2a-worker.conf.5 \
		$(DESTDIR)$(PREFIX)/include/c2a/c2a_app.h \
		$(DESTDIR)$(SYSCONFDIR)/init.d/c2a-worker \
		$(DESTDIR)$(PREFIX)/lib/systemd/system/c2a-worker.service \
		$(DESTDIR)$(PREFIX)/lib/systemd/system/c2a-worker@.service \
		$(addprefix $(DESTDIR)$(PKGLIBDIR)/,c2a-pipeline.so c2a-engine.so c2a-noaudio.so \
			c2a-http.so c2a-tls.so)
	-rmdir $(DESTDIR)$(PKGLIBDIR) $(DESTDIR)$(PREFIX)/include/c2a 2>/dev/null
	@test ! -e $(DESTDIR)$(SYSCONFDIR)/c2a-worker.conf || \
		echo "uninstall: $(DESTDIR)$(SYSCONFDIR)/c2a-worker.conf is left in place"

clean:
	rm -rf build build-san build-fuzz

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
