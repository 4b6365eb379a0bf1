# The two commands: `make run` and `make test`. Both set up what is missing
# (Debian packages, the venv with an editable install) and are fast the
# second time: each step is skipped when its inputs have not changed.

PYTHON      ?= python3
VENV        := .venv
BIN         := $(VENV)/bin
# golang-go + spdystream: e2e/streaming builds a Go SPDY client from the library
# kubelet, kubectl and crictl use, to check the streaming server against it.
APT_PACKAGES := conmon containernetworking-plugins iptables catatonit \
                docker-registry busybox-static runc skopeo umoci \
                golang-go golang-github-docker-spdystream-dev
BENCH_APT_PACKAGES := containerd
PYTEST_ARGS ?=

.PHONY: run test lint unit e2e bench setup apt-deps clean

run: setup
	$(BIN)/crid

test: setup lint unit e2e

setup: apt-deps $(VENV)/.installed

apt-deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	@rm -rf build/typecheck && mkdir -p build/typecheck/crid && \
	  for f in crid/*; do ln -s "$$PWD/$$f" build/typecheck/crid/; done && \
	  for d in api oci image network; do ln -s "$$PWD/$$d" build/typecheck/crid/$$d; done
	$(BIN)/mypy -p crid
	$(BIN)/mypy e2e tests

unit: $(VENV)/.installed
	$(BIN)/pytest tests $(PYTEST_ARGS)

e2e: setup
	$(BIN)/pytest e2e $(PYTEST_ARGS)

bench: setup
	@for p in $(BENCH_APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || \
	  { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(BENCH_APT_PACKAGES); break; }; \
	done
	$(BIN)/python -m e2e.bench

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
