# Switchboard: the two commands a user needs are `make run` and `make test`.
# Both install missing Debian packages first (scripts/deps.sh).

BUILD      ?= build
ASAN_BUILD ?= build-asan
RELEASE_BUILD ?= build-release
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 10
JOBS       ?= 2
LISTEN     ?= 127.0.0.1:8080
ADMIN_LISTEN ?= 127.0.0.1:9464
DATA       ?= ./data

.PHONY: all deps build build-asan run cluster test test-fast test-asan bench
.PHONY: bench-cluster clean format
.PHONY: format-check build-release
.PHONY: build-fuzz fuzz fuzz-smoke
.PHONY: web test-web bench-web bench-conns bench-deflate bench-w1
.PHONY: sim torture soak

# The web side (web/): built into web/dist when npm is present (npm ci from
# the committed lockfile, then esbuild); served by `make run`.
WEB_DIST   ?= web/dist

all: build

deps:
	@scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

build-asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DSB_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)

# The server and its tools as a packager builds them (-O3, whose warnings
# -O2 does not give); make test checks that they compile.
build-release: deps
	@cmake -S . -B $(RELEASE_BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(RELEASE_BUILD) -j $(JOBS) --target switchboard sbctl sbbench

run: build web
	@mkdir -p $(DATA)
	$(BUILD)/switchboard --demo --listen $(LISTEN) --data $(DATA) \
	  --admin-listen $(ADMIN_LISTEN) \
	  $$(test -f $(WEB_DIST)/index.html && echo --web $(WEB_DIST))

# Three nodes on PostgreSQL and NATS behind HAProxy on 127.0.0.1:8080
# (scripts/cluster.sh; data in ./data-cluster), in the foreground.
cluster: build web
	scripts/cluster.sh $(BUILD) ./data-cluster

# The whole suite, then again under AddressSanitizer + UBSan (and the
# Release build compiled).
test: format-check build build-asan build-release
	cd $(BUILD) && ctest --output-on-failure -j 2
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j 2
	@$(MAKE) --no-print-directory fuzz-smoke
	@$(MAKE) --no-print-directory test-web

test-fast: build
	cd $(BUILD) && ctest --output-on-failure -j 2

web:
	@if command -v npm >/dev/null; then \
	  cd web && { [ node_modules/.package-lock.json -nt package-lock.json ] || \
	    npm ci --no-audit --no-fund --loglevel=error; } && node build.mjs; \
	else echo "web: npm not found, pages not built (scripts/deps.sh installs it)"; fi

# JS SDK unit tests (node), the SDK against the real server, and the pages
# in Debian's Chromium (playwright-core); needs chromium (scripts/deps.sh).
# tests/web/run.mjs runs the files one after another (Node 18 has no
# --test-concurrency); WEB_TESTS picks some (a folder or files).
WEB_TESTS ?=
test-web: build web
	SB_SERVER_BIN=$(CURDIR)/$(BUILD)/switchboard node tests/web/run.mjs $(WEB_TESTS)

# The web client's figures (10,000 messages, a burst of 1,000, jumps 5,000
# back) into docs/benchmarks.md; fails when a target is missed.
bench-web: build web
	SB_SERVER_BIN=$(CURDIR)/$(BUILD)/switchboard node tests/web/bench.mjs --write

# The cs-chat workload; then the other benchmarks, each a target of its
# own: bench-conns (idle connections plain and TLS, mosquitto beside them,
# the reconnect storm; minutes), bench-deflate (permessage-deflate),
# bench-web (the web client).
bench: build
	scripts/bench.sh $(BUILD)
	@echo "# more: make bench-conns (idle connections, TLS, mosquitto's figure, restart and reconnect storm)"
	@echo "#       make bench-deflate (permessage-deflate: HISTORY and SYNC bytes and time), make bench-web"
	@echo "#       make bench-w1 (W=1 beside mosquitto: CPU and system calls per message)"

# Connection density and the reconnect storm (docs/benchmarks.md,
# "Connections"): CONNS (19000), TLS_CONNS, REPS, K, PHASES, SOURCES, and
# TRACE, LOG, KEEP to see inside a wave (the script says more).
bench-conns: build
	scripts/bench-conns.sh $(BUILD)

# The closed loop at W=1 beside mosquitto, alternated, with each one's CPU
# per delivered message (server by thread, load generator) and, with
# SYSCALLS=1, system calls per message by kind (docs/benchmarks.md, "W=1
# beside mosquitto"): REPS, BASE (another checkout, built, run beside).
bench-w1: build
	scripts/bench-w1.sh $(BUILD)

# permessage-deflate (docs/benchmarks.md, "Compression"): MSGS, REPS.
bench-deflate: build
	scripts/bench-deflate.sh $(BUILD)

# The cs-chat workload on three nodes (PostgreSQL, NATS, every message
# across nodes) and on one, with each part's CPU per message
# (docs/scaling.md).
bench-cluster: build
	scripts/bench_cluster.sh $(BUILD)

# The deterministic simulator (tools/sim, docs/reliability.md): SEEDS seeds
# from SEED_FROM on JOBS processes; `make test` runs 10,000 of them. A
# violation prints its seed and trace; `build/sbsim --seed N --trace`
# replays one.
SEEDS      ?= 100000
SEED_FROM  ?= 1
sim: build
	$(BUILD)/sbsim --seeds $(SEEDS) --from $(SEED_FROM) --jobs $(JOBS)

# The torture run (tests/integration/test_torture.c): ROUNDS rounds of
# kill -9, a fault proxy, failed WAL writes and fsyncs and (as root) a disk
# that fills, each checked for I1-I4; `make test` runs 20.
ROUNDS       ?= 1000
TORTURE_SEED ?= 1
torture: build
	SB_SERVER_BIN=$(CURDIR)/$(BUILD)/switchboard SB_TORTURE_ROUNDS=$(ROUNDS) \
	  SB_TORTURE_SEED=$(TORTURE_SEED) $(BUILD)/integ_torture

# The soak: SOAK_S seconds at SOAK_RATE messages a second with devices
# coming and going, the server's RSS and open files flat.
SOAK_S    ?= 3600
SOAK_RATE ?= 5000
soak: build
	SB_SERVER_BIN=$(CURDIR)/$(BUILD)/switchboard SB_SOAK_S=$(SOAK_S) \
	  SB_SOAK_RATE=$(SOAK_RATE) $(BUILD)/integ_soak

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

# Every C file as clang-format (.clang-format) would leave it.
format-check: deps
	@clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

# libFuzzer targets (fuzz/): a clang build of the decoders with ASan and
# UBSan. `make fuzz` runs each target FUZZ_SECONDS; fuzz-smoke is the short
# run `make test` ends with.
build-fuzz: deps
	@cmake -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang -DSB_FUZZ=ON \
	  -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-g -O1" >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzz

fuzz: build-fuzz
	scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

fuzz-smoke: build-fuzz
	scripts/fuzz.sh $(FUZZ_BUILD) $(FUZZ_SMOKE_SECONDS)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
