# tributary — one Makefile for libcore, the five services, tests and the local stack.
#
#   make            build libcore (static + shared + pkg-config) and every service
#   make test       deps, stack-up-secure, build, deploy checks, schema-compat, unit + integration tests (what CI runs)
#   make demo       deps, stack-up, build, run the sample through the pipeline
#   make asan       the test suite under AddressSanitizer and UBSan
#   make fault      the fault soak over the whole pipeline (tests/fault/, ~15 min; 3 brokers too)
#   make fuzz       every libFuzzer harness of tests/fuzz (FUZZ_TIME seconds each; fuzz-short: seconds)
#   make deps       install the Debian packages (root, non-interactive) and the deploy tools
#   make deploy-check  deploy/check.sh + the dashboards' metrics against the running services
#   make schema-compat  every schema in proto/ BACKWARD-compatible with its previous entry (registry)
#   make stack-up | stack-down | stack-status   the local servers on loopback
#   make stack-up-secure   the same and the secure set (SASL_SSL Kafka, Redis ACLs, PostgreSQL TLS)

VERSION   := 0.1.0
BUILD     ?= build
CC        ?= cc
PKGS      := rdkafka hiredis libcjson avro-c libcurl libmicrohttpd uuid libcrypto zlib
DB_PKGS   := libpq libmongoc-1.0 libmariadb
TEST_PKGS := check

PKG_CFLAGS  := $(shell pkg-config --cflags $(PKGS) $(DB_PKGS) 2>/dev/null)
PKG_LIBS    := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm
DB_LIBS     := $(shell pkg-config --libs $(DB_PKGS) 2>/dev/null)
TEST_LIBS   := $(shell pkg-config --libs $(TEST_PKGS) 2>/dev/null)

WARN      := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-format-nonliteral
OPT       ?= -O2 -g
SAN       ?=
CFLAGS    += -std=c11 -D_GNU_SOURCE $(WARN) $(OPT) $(SAN) -fPIC \
             -Ilibcore/include -Itests/common $(PKG_CFLAGS) \
             -DTB_VERSION='"$(VERSION)"' -DTB_PROTO_DIR='"$(CURDIR)/proto"'
LDFLAGS   += $(SAN)

CORE_SRC  := $(wildcard libcore/src/*.c)
CORE_OBJ  := $(CORE_SRC:%.c=$(BUILD)/obj/%.o)
CORE_A    := $(BUILD)/lib/libtributary-core.a
CORE_SO   := $(BUILD)/lib/libtributary-core.so.$(VERSION)
CORE_PC   := $(BUILD)/lib/pkgconfig/tributary-core.pc

SERVICES  := svc-ingest svc-validator svc-cache-feeder svc-persister svc-recon
SVC_BINS  := $(SERVICES:%=$(BUILD)/bin/%)

UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/unit/%)
INT_SRC   := $(wildcard tests/integration/test_*.c)
INT_BINS  := $(INT_SRC:tests/integration/%.c=$(BUILD)/tests/integration/%)
TEST_HELPERS := $(wildcard tests/common/*.c)
TEST_HELPER_OBJ := $(TEST_HELPERS:%.c=$(BUILD)/obj/%.o)

# Libraries a service needs beyond libcore's own.
LIBS_svc-ingest       := -lcsv
LIBS_svc-persister    := $(DB_LIBS)
LIBS_svc-recon        := $(DB_LIBS)

.PHONY: all lib services tests test unit integration run-tests asan demo deps \
        stack-up stack-up-secure stack-down stack-status clean bench fuzz fuzz-build fuzz-short help fault fault-quick deploy-check schema-compat

all: lib services

help:
	@sed -n '2,14p' Makefile | sed 's/^# \{0,1\}//'

lib: $(CORE_A) $(CORE_SO) $(CORE_PC)

services: $(SVC_BINS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(CORE_A): $(CORE_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(CORE_SO): $(CORE_OBJ)
	@mkdir -p $(dir $@)
	$(CC) -shared -Wl,-soname,libtributary-core.so.0 $(LDFLAGS) -o $@ $^ $(PKG_LIBS)
	ln -sf libtributary-core.so.$(VERSION) $(BUILD)/lib/libtributary-core.so.0
	ln -sf libtributary-core.so.$(VERSION) $(BUILD)/lib/libtributary-core.so

$(CORE_PC): libcore/tributary-core.pc.in Makefile
	@mkdir -p $(dir $@)
	sed -e 's|@PREFIX@|$(CURDIR)/$(BUILD)|' -e 's|@INCLUDEDIR@|$(CURDIR)/libcore/include|' \
	    -e 's|@VERSION@|$(VERSION)|' -e 's|@REQUIRES@|$(PKGS)|' $< > $@

# Each service: every .c in its folder, linked against the static libcore.
.SECONDARY:
.SECONDEXPANSION:
$(BUILD)/bin/%: $$(addsuffix .o,$$(addprefix $(BUILD)/obj/,$$(basename $$(wildcard $$*/*.c)))) $(CORE_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(CORE_A) $(LIBS_$*) $(PKG_LIBS)

$(BUILD)/tests/unit/%: $(BUILD)/obj/tests/unit/%.o $(TEST_HELPER_OBJ) $(CORE_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(TEST_LIBS) $(DB_LIBS) $(PKG_LIBS)

$(BUILD)/tests/integration/%: $(BUILD)/obj/tests/integration/%.o $(TEST_HELPER_OBJ) $(CORE_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(TEST_LIBS) $(DB_LIBS) $(PKG_LIBS)

# Tests of a service's own code, tests/{unit,integration}/test_<name>_*.c
# (svc-cache-feeder → test_cache_feeder_*), link every .c of the service's
# folder but main.c.
svc_objs = $(patsubst %.c,$(BUILD)/obj/%.o,$(filter-out $(1)/main.c,$(wildcard $(1)/*.c)))
svc_test = test_$(subst -,_,$(patsubst svc-%,%,$(1)))
define SVC_TEST_RULES
$(BUILD)/tests/unit/$(call svc_test,$(1))_%: $(BUILD)/obj/tests/unit/$(call svc_test,$(1))_%.o $(call svc_objs,$(1)) $(TEST_HELPER_OBJ) $(CORE_A)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(TEST_LIBS) $$(DB_LIBS) $$(PKG_LIBS)
$(BUILD)/tests/integration/$(call svc_test,$(1))_%: $(BUILD)/obj/tests/integration/$(call svc_test,$(1))_%.o $(call svc_objs,$(1)) $(TEST_HELPER_OBJ) $(CORE_A)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(TEST_LIBS) $$(DB_LIBS) $$(PKG_LIBS)
endef
$(foreach s,$(SERVICES),$(eval $(call SVC_TEST_RULES,$(s))))

# svc-recon's dashboard assembles its assets in (.incbin).
$(BUILD)/obj/svc-recon/dashboard.o: $(wildcard svc-recon/assets/*)

# The fault suite's checker (tests/fault/run.sh drives the pipeline).
FAULT_CHECK := $(BUILD)/tests/fault/fault_check
$(FAULT_CHECK): $(BUILD)/obj/tests/fault/fault_check.o $(BUILD)/obj/tests/fault/fault_model.o
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ -lcsv $(DB_LIBS) $(PKG_LIBS)

# `make schema-compat`: every schema of proto/ BACKWARD-compatible with its
# previous entry, asked of the real Schema Registry (the stack's by default).
SCHEMA_COMPAT := $(BUILD)/tests/tools/schema_compat
REGISTRY_URL ?= http://127.0.0.1:$(or $(STACK_REGISTRY_PORT),18081)/apis/ccompat/v7
$(SCHEMA_COMPAT): $(BUILD)/obj/tests/tools/schema_compat.o $(CORE_A)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

schema-compat: $(SCHEMA_COMPAT)
	$(SCHEMA_COMPAT) $(REGISTRY_URL) $(CURDIR)/proto

tests: $(UNIT_BINS) $(INT_BINS) $(FAULT_CHECK) $(SCHEMA_COMPAT) services

# ---- running tests ---------------------------------------------------------

# CK_FORK=yes isolates each test; CK_DEFAULT_TIMEOUT covers slow servers.
TEST_ENV := CK_FORK=yes CK_DEFAULT_TIMEOUT=120 TRIBUTARY_BUILD=$(BUILD) TB_PROTO_DIR=$(CURDIR)/proto

unit: $(UNIT_BINS)
	@$(TEST_ENV) tests/run-suite.sh unit $(UNIT_BINS)

integration: $(INT_BINS) services
	@$(TEST_ENV) tests/run-suite.sh integration $(INT_BINS)

# svc-persister's suite (the longest, mostly waiting on its servers) runs in
# a lane beside the others (test_corpus, the malformed-input corpus, is one
# of the integration suites), followed in that lane by the pipeline on the
# secure set (tests/integration/secure.sh: its own servers, which make test
# starts) and the short fuzz run (clang, ~30 s to build, ~35 s to run; no
# server); the fault suite, which stops servers, last.
BESIDE_THEN := $(TEST_ENV) tests/integration/secure.sh && \
  $(MAKE) -j2 --no-print-directory fuzz-build >/dev/null && \
  $(MAKE) --no-print-directory fuzz-short
run-tests: tests deploy-check
	$(SCHEMA_COMPAT) $(REGISTRY_URL) $(CURDIR)/proto
	@$(TEST_ENV) SUITE_BESIDE="$(filter %/test_persister,$(INT_BINS))" \
	  SUITE_BESIDE_THEN='$(BESIDE_THEN)' \
	  tests/run-suite.sh $(notdir $(BUILD)) $(UNIT_BINS) $(INT_BINS)
	@$(TEST_ENV) tests/fault/run.sh --quick

# deploy/ checked for real (deploy/check.sh: helm lint/template +
# kubeconform, promtool, compose, workflow, the Dockerfile's packages against
# ldd; tools from deploy/local/tools.sh, installed by make deps), and every
# metric the dashboards and alert rules name against the running services.
deploy-check: services $(FAULT_CHECK)
	@TRIBUTARY_BUILD=$(BUILD) deploy/check.sh
	@$(TEST_ENV) tests/integration/metrics_names.sh

# The bounded fault suite alone (part of run-tests), and the long soak.
fault-quick: tests
	@$(TEST_ENV) tests/fault/run.sh --quick

fault: tests
	@$(TEST_ENV) tests/fault/run.sh --soak

test: deps
	$(MAKE) stack-up-secure
	$(MAKE) -j2 all tests
	$(MAKE) run-tests

ASAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all
asan: deps
	$(MAKE) stack-up
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  $(MAKE) BUILD=build-asan OPT='-O1 -g -fno-omit-frame-pointer' SAN='$(ASAN_FLAGS)' all run-tests

demo: deps
	$(MAKE) stack-up
	$(MAKE) all tests
	deploy/local/demo.sh $(BUILD)

bench: all
	bench/run.sh $(BUILD)

# ---- fuzzing (tests/fuzz/README.md) ------------------------------------------
# Each tests/fuzz/fuzz_<name>.c is a libFuzzer harness built with clang under
# ASan+UBSan against libcore and, for a service's code, that service's
# folder (every .c but main.c), all compiled apart in $(BUILD)/fuzz/obj.
# Seeds: tests/fuzz/corpus/<harness>/ (read only; new inputs land in
# $(BUILD)/fuzz/work/<harness>/, crashes in $(BUILD)/fuzz/).
#   make fuzz        each harness for FUZZ_TIME seconds (the long run)
#   make fuzz-short  each harness over its corpus, then FUZZ_SHORT seconds (in run-tests)
FUZZ_CC    ?= clang
FUZZ_TIME  ?= 600
FUZZ_SHORT ?= 3
FUZZ_SAN   := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) -g -O1 $(FUZZ_SAN) -Ilibcore/include \
               $(PKG_CFLAGS) -DTB_VERSION='"$(VERSION)"' -DTB_PROTO_DIR='"$(CURDIR)/proto"'
FUZZ_SRC   := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_NAMES := $(FUZZ_SRC:tests/fuzz/%.c=%)
FUZZ_BINS  := $(FUZZ_NAMES:%=$(BUILD)/fuzz/%)
FUZZ_CORE  := $(BUILD)/fuzz/lib/libcore.a
# The service folder a harness takes its code from.
FUZZ_SVC_fuzz_reader    := svc-ingest
FUZZ_SVC_fuzz_mapper    := svc-ingest
FUZZ_SVC_fuzz_rules     := svc-validator
FUZZ_SVC_fuzz_recon_api := svc-recon
fuzz_svc_lib = $(if $(FUZZ_SVC_$(1)),$(BUILD)/fuzz/lib/lib$(FUZZ_SVC_$(1)).a)

$(BUILD)/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

$(FUZZ_CORE): $(CORE_SRC:%.c=$(BUILD)/fuzz/obj/%.o)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/fuzz/lib/lib%.a: $$(addsuffix .o,$$(addprefix $(BUILD)/fuzz/obj/,$$(basename $$(filter-out $$*/main.c,$$(wildcard $$*/*.c)))))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_util.h $$(call fuzz_svc_lib,fuzz_$$*) $(FUZZ_CORE)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(call fuzz_svc_lib,fuzz_$*) \
	  $(FUZZ_CORE) -lcsv $(DB_LIBS) $(PKG_LIBS)

fuzz-build: $(FUZZ_BINS)

# Options of every run: malloc_limit_mb catches an allocation sized by an
# untrusted length; inputs up to 64 KiB; no leak is tolerated.
FUZZ_OPTS := -malloc_limit_mb=256 -rss_limit_mb=1024 -max_len=65536 -timeout=10 -detect_leaks=1
FUZZ_ENV  := TB_PROTO_DIR=$(CURDIR)/proto ASAN_OPTIONS=abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1

fuzz: fuzz-build
	@for f in $(FUZZ_NAMES); do \
	  mkdir -p $(BUILD)/fuzz/work/$$f; \
	  echo "fuzz: $$f for $(FUZZ_TIME)s"; \
	  $(FUZZ_ENV) $(BUILD)/fuzz/$$f $(FUZZ_OPTS) -max_total_time=$(FUZZ_TIME) -print_final_stats=1 \
	    -artifact_prefix=$(BUILD)/fuzz/$$f- $(BUILD)/fuzz/work/$$f tests/fuzz/corpus/$$f || exit 1; \
	done

fuzz-short: fuzz-build
	@FUZZ_ENV='$(FUZZ_ENV)' FUZZ_OPTS='$(FUZZ_OPTS)' tests/fuzz/short.sh $(BUILD)/fuzz $(FUZZ_SHORT) $(FUZZ_NAMES)

# ---- dependencies and the local stack --------------------------------------

deps:
	@deploy/local/deps.sh
	@deploy/local/tools.sh install

stack-up:
	@deploy/local/stack.sh up

stack-up-secure:
	@deploy/local/stack.sh up --secure

stack-down:
	@deploy/local/stack.sh down

stack-status:
	@deploy/local/stack.sh status

clean:
	rm -rf $(BUILD) build-asan

-include $(shell find $(BUILD)/obj $(BUILD)/fuzz/obj -name '*.d' 2>/dev/null)
