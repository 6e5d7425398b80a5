# pyetcd: `make run` starts a one-member server, `make test` runs the whole suite on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
# setuptools warns on every editable install that a same-named folder may shadow the package: that is the point here.
PIP := PYTHONWARNINGS="ignore:Editable installation" $(VENV)/bin/pip
PROTO_FILES := $(shell find proto/etcdpb -name '*.proto' | sort)
SEEDS ?= 2000
DRIVER_SEEDS ?= 1000
DURATION ?= 600
# The benchmark's load generator: Go, built offline in GOPATH mode against Debian's packaged etcd sources.
LOADGEN := benchmarks/loadgen/bin/loadgen
LOADGEN_SOURCES := $(wildcard benchmarks/loadgen/*.go)
GO_ETCD_STUBS := /usr/share/gocode/src/go.etcd.io/etcd/etcdserver/etcdserverpb
GO_ENV := GO111MODULE=off GOPATH=/usr/share/gocode GOPROXY=off GOFLAGS= GOCACHE=$(CURDIR)/benchmarks/loadgen/bin/cache

.PHONY: install client-venvs etcdctl run test test-chaos test-serving test-slow test-fast proto lint sim sim-driver cluster bench chaos etcd-binaries go-toolchain loadgen clean \
	browser screenshots

# Running needs only pyproject's runtime dependencies; the test and lint tools come on top.
$(VENV)/.runtime: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e .
	touch $@

$(VENV)/.installed: $(VENV)/.runtime
	$(PIP) install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# The etcd client libraries the tests drive, each beside its own pins (tests/clients/): two virtualenvs
# and the npm client's node_modules, all outside git.
CLIENTS := .clients
$(CLIENTS)/%/.installed: tests/clients/requirements-%.txt
	rm -rf $(CLIENTS)/$*
	python3 -m venv $(CLIENTS)/$*
	$(CLIENTS)/$*/bin/pip install -q --no-deps -r $<
	touch $@

tests/clients/node/node_modules/.installed: tests/clients/node/package.json tests/clients/node/package-lock.json
	@command -v npm >/dev/null || { (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm; }
	cd tests/clients/node && npm ci --no-audit --no-fund --loglevel=error
	touch $@

client-venvs: $(CLIENTS)/etcd3/.installed $(CLIENTS)/aetcd/.installed tests/clients/node/node_modules/.installed

# The README's first command after `make run` is etcdctl: Debian's etcd-client, nothing more.
etcdctl:
	@command -v etcdctl >/dev/null || { \
	  (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-client; }

etcd-binaries:
	@command -v etcdctl >/dev/null && command -v etcd >/dev/null || { \
	  (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-client etcd-server; }
	@command -v ip >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2

# Headless Chromium and its WebDriver, for the Raft view's browser tests and screenshots.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }

go-toolchain:
	@command -v go >/dev/null && test -d $(GO_ETCD_STUBS) || { \
	  (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go golang-etcd-server-dev; }

$(LOADGEN): $(LOADGEN_SOURCES) | go-toolchain
	cd benchmarks/loadgen && $(GO_ENV) go build -trimpath -o bin/loadgen .

loadgen: $(LOADGEN)

run: $(VENV)/.runtime etcdctl
	$(VENV)/bin/pyetcd

proto: install
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) -m grpc_tools.protoc -Iproto --python_out=proto --grpc_python_out=proto \
	  --mypy_out=proto $(PROTO_FILES)

test: install etcd-binaries loadgen client-venvs browser
	$(PY) -m pytest -q -p no:cacheprovider --durations=15 $(PYTEST_ARGS)

# The etcdctl, API, auth and TLS member tests again, each pyetcd member serving from 2 serving processes.
SERVING_TESTS = tests/server/test_etcdctl.py tests/server/test_same_output.py tests/server/test_same_headers.py \
	tests/server/test_process_watch.py tests/auth tests/tls/test_tls_member.py
test-serving: install etcd-binaries
	PYETCD_TEST_SERVING_PROCESSES=2 $(PY) -m pytest -q -p no:cacheprovider --durations=5 $(SERVING_TESTS) $(PYTEST_ARGS)

test-chaos: install etcd-binaries
	$(PY) -m pytest -q -p no:cacheprovider --durations=5 -m chaos $(PYTEST_ARGS)

test-slow: install etcd-binaries
	$(PY) -m pytest -q -p no:cacheprovider -m slow -s

lint: install go-toolchain
	$(VENV)/bin/ruff check pyetcd raft storage devservers tests benchmarks
	$(VENV)/bin/mypy pyetcd raft storage
	$(VENV)/bin/mypy devservers benchmarks/compare benchmarks/profile_point.py tests/benchmarks tests/clients
	@test -z "$$(gofmt -l benchmarks/loadgen)" || { gofmt -l benchmarks/loadgen; echo "run gofmt -w benchmarks/loadgen"; exit 1; }
	cd benchmarks/loadgen && $(GO_ENV) go vet .

sim: install sim-driver
	$(PY) -m raft.sim --seeds $(SEEDS)

sim-driver: install
	$(PY) -m raft.sim --driver --seeds $(DRIVER_SEEDS)

bench: install etcd-binaries loadgen
	$(PY) -m benchmarks.compare --mode $(or $(MODE),quick) $(if $(KEYS),--keys $(KEYS))

# The README's pictures of the Raft view (docs/raftview-*.png), refreshed from a real run.
screenshots: install browser etcd-binaries
	$(PY) -m tests.view.screenshots docs

cluster: install
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/honcho -f Procfile start

chaos: install
	$(PY) -m tests.chaos --duration $(DURATION)

clean:
	rm -rf $(VENV) *.etcd benchmarks/loadgen/bin $(CLIENTS) tests/clients/node/node_modules
