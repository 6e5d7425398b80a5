# pyetcd: `make run` starts a one-member server, `make test` runs the whole suite on a fresh machine.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
PROTO_FILES := $(shell find proto/etcdpb -name '*.proto' | sort)
SEEDS ?= 2000
DURATION ?= 600

.PHONY: install run test test-fast proto lint sim cluster bench chaos etcd-binaries clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

etcd-binaries:
	@command -v etcdctl >/dev/null && command -v etcd >/dev/null || { \
	  (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-client etcd-server; }
	@command -v ip >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2

run: install
	$(VENV)/bin/pyetcd

proto: install
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) -m grpc_tools.protoc -Iproto --python_out=proto --grpc_python_out=proto \
	  --mypy_out=proto $(PROTO_FILES)

test: install etcd-binaries
	$(PY) -m pytest -q -p no:cacheprovider

lint: install
	$(VENV)/bin/ruff check pyetcd raft storage tests benchmarks
	$(VENV)/bin/mypy pyetcd raft storage

sim: install
	$(PY) -m raft.sim --seeds $(SEEDS)

bench: install etcd-binaries
	$(PY) -m benchmarks.compare --mode $(or $(MODE),quick)

cluster: install
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(VENV)/bin/honcho -f Procfile start

chaos: install
	$(PY) -m tests.chaos --duration $(DURATION)

clean:
	rm -rf $(VENV) *.etcd
