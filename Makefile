# The two commands: `make run` and `make test`. Both set up what is missing
# (Debian packages, the venv with an editable install) and are fast the
# second time: each step is skipped when its inputs have not changed.

PYTHON      ?= python3
VENV        := .venv
BIN         := $(VENV)/bin
# What crid needs to run, and what only its tests need (a registry, image
# tools, and Go with spdystream: e2e/streaming builds a SPDY client from the
# library kubelet, kubectl and crictl use, to check our server against it;
# containerd, whose streaming server checks our SPDY client in turn).
APT_PACKAGES := conmon containernetworking-plugins iptables catatonit runc
TEST_APT_PACKAGES := docker-registry busybox-static skopeo umoci \
                     golang-go golang-github-docker-spdystream-dev containerd
BENCH_APT_PACKAGES := containerd
PYTEST_ARGS ?=

.PHONY: run test lint unit e2e bench setup test-setup apt-install clean

run: setup
	$(BIN)/crid

test: test-setup lint unit e2e

setup: $(VENV)/.installed
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(APT_PACKAGES)"

test-setup: setup
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(TEST_APT_PACKAGES)"

# Installs only the PACKAGES not installed yet; nothing to do is fast.
apt-install:
	@missing=""; for p in $(PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi

# A "compat" editable install is a plain path entry: no import hook runs at
# every Python start-up (crid-runtime starts for every container); crid's
# __init__ finds api/, oci/, image/, network/ beside it. The launcher then
# replaces pip's crid-runtime wrapper with one that skips site (`-IS`).
$(VENV)/.installed: setup.cfg pyproject.toml oci/launcher.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]' --config-settings editable_mode=compat
	$(BIN)/python -m crid.oci.launcher
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

e2e: test-setup
	$(BIN)/pytest e2e $(PYTEST_ARGS)

bench: test-setup
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(BENCH_APT_PACKAGES)"
	$(BIN)/python -m e2e.bench

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
