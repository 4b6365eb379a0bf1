# The two commands: `make run` and `make test`. Both set up what is missing
# (Debian packages, the venv with an editable install) and are fast the
# second time: each step is skipped when its inputs have not changed.

PYTHON      ?= python3
VENV        := .venv
BIN         := $(VENV)/bin
# What crid needs to run, and what only its tests need (a registry, image
# tools, and Go with spdystream: e2e/streaming builds a SPDY client from the
# library kubelet, kubectl and crictl use, to check our server against it;
# containerd, whose streaming server checks our SPDY client in turn; mmdebstrap
# and podman, which make the node image's Debian base and build the Dockerfile
# on it for e2e/deploy; gcc and libc6-dev, which build the static probes
# e2e/security runs inside containers).
APT_PACKAGES := conmon containernetworking-plugins iptables catatonit runc
TEST_APT_PACKAGES := docker-registry busybox-static skopeo umoci \
                     golang-go golang-github-docker-spdystream-dev containerd \
                     mmdebstrap podman gcc libc6-dev
BENCH_APT_PACKAGES := containerd zstd
PYTEST_ARGS ?=

.PHONY: run test lint unit e2e e2e-aio bench bench-all setup test-setup apt-install clean lock dist \
        fuzz fuzz-ci chaos soak

run: setup
	$(BIN)/crid

test: test-setup lint unit fuzz-ci e2e e2e-aio

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

# Dependencies come from the lock files only (`make lock` writes them from
# setup.cfg's ranges), with their hashes. Their wheels are fetched once into
# $(WHEELS); every install after that (this venv, the wheel test's venv, the
# node image) takes them from there and needs no index.
LOCK        := requirements.txt
TEST_LOCK   := requirements-test.txt
WHEELS      := build/wheels
PIP_OFFLINE := --no-index --find-links $(WHEELS) --require-hashes

$(WHEELS)/.fetched: $(LOCK) $(TEST_LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip download -q --no-deps --require-hashes -d $(WHEELS) -r $(TEST_LOCK)
	touch $@

$(VENV)/.locked: $(WHEELS)/.fetched
	$(BIN)/pip install -q $(PIP_OFFLINE) -r $(TEST_LOCK)
	touch $@

# A "strict" editable install: setuptools links each source file into a tree
# under build/ whose layout is the installed package's (api/ as crid/api, ...)
# and puts that tree on the path, a plain path entry: no import hook runs at
# every Python start-up (crid-runtime starts for every container). A new or
# removed file changes its folder, which reinstalls.
# The checkout itself goes on the path after it (crid-checkout.pth), for the
# test packages e2e and tests; crid/ in the checkout lacks api/, oci/, ..., so
# nothing may put the checkout first: pytest appends (setup.cfg) and Python is
# run with -P (no script dir or cwd on the path) where it matters.
# The launcher then replaces pip's crid-runtime wrapper with one that skips
# site (`-IS`).
SOURCE_DIRS := $(shell find crid api oci image network -type d -not -name __pycache__)
$(VENV)/.installed: $(VENV)/.locked setup.cfg pyproject.toml $(SOURCE_DIRS)
	$(BIN)/pip install -q --no-index --no-deps --no-build-isolation \
	  -e . --config-settings editable_mode=strict
	echo "$(CURDIR)" > "$$($(BIN)/python -P -c 'import sysconfig; print(sysconfig.get_path("purelib"))')/crid-checkout.pth"
	$(BIN)/python -P -m crid.oci.launcher
	touch $@

# Regenerate the lock files from setup.cfg's ranges: after changing a range
# there, or to take newer releases (`make lock UPGRADE=1`). Commit both files.
lock: $(VENV)/.locked
	CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile -q $(LOCK_FLAGS) -o $(LOCK) setup.cfg
	CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile -q $(LOCK_FLAGS) --extra test -c $(LOCK) -o $(TEST_LOCK) setup.cfg
LOCK_FLAGS = --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url \
             --no-emit-find-links --no-emit-trusted-host $(if $(UPGRADE),--upgrade)

# An sdist and a wheel in dist/, built from the locked setuptools (no index).
dist: $(VENV)/.locked
	rm -rf dist
	$(BIN)/python -m build --no-isolation --outdir dist .

# The node image (Dockerfile, manifests/daemonset.yaml) in podman's storage,
# on a Debian base made with mmdebstrap: no Docker Hub, no Python index.
# IMAGE names it besides its content-keyed localhost/crid-node-<checkout> tag.
# (Not "image": that is the image/ folder, a prerequisite of the install.)
IMAGE ?= crid:latest
.PHONY: node-image
node-image: test-setup
	$(BIN)/python -P -m e2e.deploy.node_image $(IMAGE)

# The generated modules of the .proto files of our own in api/ (NRI, ttrpc,
# the CRI messages newer than the stubs), checked in; tests/api/test_protos.py
# fails when one is stale. Run after editing a .proto. (--proto_path maps api/
# to crid/api: the name the files have in the descriptor pool is where the
# package installs them. The CRI's own v1/api.proto, which cri_supplement.proto
# imports, is read from the installed stubs as a descriptor set, and the
# generated import of it is pointed at the stubs' module.)
PROTOS := api/nri.proto api/ttrpc.proto api/cri_supplement.proto
.PHONY: protos
protos: $(VENV)/.locked
	rm -rf build/protos && mkdir -p build/protos
	$(BIN)/python -P -c 'from google.protobuf import descriptor_pb2; from cri_api.v1 import api_pb2; \
	  s = descriptor_pb2.FileDescriptorSet(); s.file.add().MergeFromString(api_pb2.DESCRIPTOR.serialized_pb); \
	  open("build/protos/cri_api.pb", "wb").write(s.SerializeToString())'
	$(BIN)/python -P -m grpc_tools.protoc --proto_path=crid/api=api \
	  --descriptor_set_in=build/protos/cri_api.pb \
	  --python_out=build/protos --pyi_out=build/protos $(PROTOS:api/%=crid/api/%)
	# NRI's enum Field has a value named None: fine at run time, a syntax error in a stub.
	sed -i '/^ *None: /d' build/protos/crid/api/*_pb2.pyi
	sed -i 's/^from v1 import /from cri_api.v1 import /' build/protos/crid/api/*_pb2.py*
	cp build/protos/crid/api/*_pb2.py build/protos/crid/api/*_pb2.pyi api/

lint: $(VENV)/.installed
	$(BIN)/ruff check .
	$(MYPY) -p crid
	$(MYPY) e2e tests
# crid as installed (the editable link tree), not the checkout's crid/ alone.
MYPY = MYPYPATH="$$($(BIN)/python -P -c 'import crid, os; print(os.path.dirname(os.path.dirname(crid.__file__)))')" $(BIN)/mypy

unit: $(VENV)/.installed
	$(BIN)/pytest tests $(PYTEST_ARGS)

e2e: test-setup
	$(BIN)/pytest e2e $(PYTEST_ARGS)

# The suite again with the gRPC fast path off: every daemon serves on grpc.aio,
# the transport crid falls back to on a grpcio its fast path was not tested with.
# It runs what goes through the API; run once, above, is:
# - what only tests packaging (the wheel, the node image);
# - the chaos test and the soak: they kill processes and count resources, and
#   are the suite's longest;
# - what never starts a daemon (NO_DAEMON: the runtime's CLI, the streaming
#   server in-process, the spec, the test registry and images, the critest
#   runner's summary, five security files);
# - what tests the node under the daemon, not its answers (NODE_SIDE: crash
#   recovery, the reaper, crid check, a killed runtime, a damaged store, mount
#   races, unpacking hostile layers).
NO_DAEMON := e2e/runtime e2e/streaming e2e/spec e2e/test_testbed.py e2e/critest/test_run.py \
             $(addprefix e2e/security/test_,devices.py exec_namespaces.py fd_leaks.py \
                                          runtime_binary.py seccomp_default.py)
NODE_SIDE := e2e/check e2e/containers/test_restart.py e2e/containers/test_restart_shared_pid.py \
             e2e/daemon/test_zombies.py e2e/faults/test_runtime_killed.py \
             e2e/faults/test_store_damage.py e2e/security/test_mount_races.py \
             e2e/security/test_image_files.py
e2e-aio: test-setup
	CRID_E2E_GRPC_FAST_PATH=off $(BIN)/pytest e2e --ignore=e2e/packaging \
	  --ignore=e2e/deploy --ignore=e2e/chaos --ignore=e2e/soak \
	  $(addprefix --ignore=,$(NO_DAEMON) $(NODE_SIDE)) $(PYTEST_ARGS)

# The chaos test's long setting: 500 kills (of the daemon, conmons, and the
# runtime mid-create) under concurrent workers; its short one (20) runs in
# `make e2e`. CRID_CHAOS_SEED=<n> replays a failure's choices (printed with it).
chaos: test-setup
	CRID_CHAOS=long nice -n 19 $(BIN)/pytest e2e/chaos/test_chaos.py::test_chaos \
	  -o timeout=0 -s $(PYTEST_ARGS)

# The soak's long run: SOAK_MINUTES of pod churn with 20 pods alive, sampled
# every minute; `make e2e` runs it for 5. The samples go to build/soak/soak.csv,
# their plot to build/soak/soak.png (for BENCHMARKS.md).
SOAK_MINUTES ?= 120
soak: test-setup
	mkdir -p build/soak
	CRID_SOAK_SECONDS=$$(( $(SOAK_MINUTES) * 60 )) CRID_SOAK_CSV=$(CURDIR)/build/soak/soak.csv \
	  $(BIN)/pytest e2e/soak/test_soak.py::test_soak -s $(PYTEST_ARGS)
	$(BIN)/python -P -m e2e.soak.plot build/soak/soak.csv build/soak/soak.png

# Coverage-guided fuzzing (atheris, libFuzzer): each target of tests/fuzz
# for FUZZ_SECONDS over a copy of its seeds and regression inputs under
# build/fuzz/, FUZZ_JOBS at a time; findings land in build/fuzz/<target>/
# findings/. `make fuzz-ci` gives each a few seconds, as part of `make test`;
# `make unit` replays the checked-in inputs without atheris.
FUZZ_SECONDS ?= 600
FUZZ_JOBS    ?= 1
FUZZ_TARGETS ?=
fuzz: $(VENV)/.installed
	nice -n 19 $(BIN)/python -P -m tests.fuzz.run --seconds $(FUZZ_SECONDS) \
	  --jobs $(FUZZ_JOBS) $(FUZZ_TARGETS)

fuzz-ci: $(VENV)/.installed
	$(BIN)/python -P -m tests.fuzz.run --seconds 5 --jobs 2

# The node suite of issue 19 (under 15 minutes on 2 cores): the runtime vs
# runc, node scale, pull, critest -benchmark; every module, the comparisons
# against older revisions among them, with bench-all.
bench: test-setup
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(BENCH_APT_PACKAGES)"
	$(BIN)/python -P -m e2e.bench

bench-all: test-setup
	@$(MAKE) --no-print-directory apt-install PACKAGES="$(BENCH_APT_PACKAGES)"
	$(BIN)/python -P -m e2e.bench --all

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
