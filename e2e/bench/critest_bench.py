"""cri-tools' own benchmark suite (``critest -benchmark``), crid against containerd, same run.

    python -P -m e2e.bench.critest_bench [--critest PATH] [--pods N] [--containers N] ...

critest is never built here (see /work/shared/CRITEST.md): build it by hand
from kubernetes-sigs/cri-tools (``make critest``) and pass ``--critest PATH``
or set ``CRITEST``; without one this benchmark says it is skipped and exits 0.

One local registry holds critest's look-alike images (``e2e.critest``); crid
(its ``crid`` handler) and a private Debian containerd each pull critest's
registries from it through their mirror config. critest runs its benchmark
specs against each in turn with a ``--benchmarking-params-file`` (``--pods``
pod lifecycles and ``--containers`` container lifecycles, ``--parallel`` at
a time; ``--pulls`` image pull/status/remove cycles and as many ListImages,
``--pull-parallel`` at a time, of the busybox look-alike) and writes each
operation's durations to ``--benchmarking-output-dir``. Printed: each
operation's median per runtime and the ratio crid/containerd, with
CreateContainer and StartContainer also taken together (crid starts the
process at create, as cri-o does; containerd at start).
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from e2e.bench import _command as command
from e2e.bench._containerd import containerd_daemon
from e2e.bench.sandbox import bridge_conflist
from e2e.critest.images import E2E, MIRRORED_REGISTRIES
from e2e.critest.run import crid_on, find_critest, lookalike_registry
from e2e.fixtures.daemon import remove_workdir
from e2e.fixtures.registry import Registry
from e2e.sandbox.pods import PodNet

HANDLER = "crid"
BUSYBOX = f"registry.k8s.io/{E2E}/busybox:1.29-2"
# ListImages' spec removes these after it: look-alikes no other spec needs.
LISTED = tuple(f"gcr.io/k8s-staging-cri-tools/test-image-{n}:latest" for n in (1, 2, 3))
CREATE_START = "CreateContainer+StartContainer"
TIMEOUT_S = 120  # critest's wait for the next result of a spec, per spec

Medians = dict[str, float]  # operation -> median ms


def params(pods: int, containers: int, parallel: int, pulls: int,
           pull_parallel: int) -> dict[str, Any]:
    """critest's benchmarking params (YAML; JSON is YAML)."""
    return {
        "podsNumber": pods, "podsNumberParallel": parallel,
        "podBenchmarkTimeoutSeconds": TIMEOUT_S,
        "containersNumber": containers, "containersNumberParallel": parallel,
        "containerBenchmarkTimeoutSeconds": TIMEOUT_S,
        "imagesNumber": pulls, "imagesNumberParallel": pull_parallel,
        "imageBenchmarkTimeoutSeconds": TIMEOUT_S,
        "imagePullingBenchmarkImage": BUSYBOX,
        "imageListingBenchmarkImages": list(LISTED),
        "podContainerStartBenchmarkTimeoutSeconds": TIMEOUT_S,
    }


def medians(out_dir: Path) -> Medians:
    """Each operation's median (ms) over the datapoints of critest's result files."""
    samples: dict[str, list[float]] = {}
    for path in sorted(out_dir.glob("*.json")):
        results = json.loads(path.read_text())
        names: list[str] = results["operationsNames"]
        for point in results.get("datapoints") or []:
            taken = dict(zip(names, (ns / 1e6 for ns in point["operationsDurationsNs"]),
                             strict=True))
            for name, ms in taken.items():
                samples.setdefault(name, []).append(ms)
            if "CreateContainer" in taken and "StartContainer" in taken:
                samples.setdefault(CREATE_START, []).append(
                    taken["CreateContainer"] + taken["StartContainer"])
    return {name: statistics.median(taken) for name, taken in samples.items()}


def report(found: dict[str, Medians]) -> str:
    crid, ctrd = found.get("crid", {}), found.get("containerd", {})
    lines = [f"{'operation':<32} {'crid ms':>9} {'ctrd ms':>9} {'crid/ctrd':>9}"]
    for name in [*crid, *(n for n in ctrd if n not in crid)]:
        mine, theirs = crid.get(name), ctrd.get(name)
        ratio = f"{mine / theirs:9.2f}" if mine is not None and theirs else f"{'-':>9}"
        lines.append(f"{name:<32} {_ms(mine)} {_ms(theirs)} {ratio}")
    return "\n".join(lines)


def _ms(value: float | None) -> str:
    return f"{value:9.1f}" if value is not None else f"{'-':>9}"


def run_critest(critest: str, socket: str, params_file: Path, out_dir: Path) -> int:
    out_dir.mkdir(parents=True)
    argv = [critest, "-benchmark", "--runtime-endpoint", f"unix://{socket}",
            "--image-endpoint", f"unix://{socket}",
            f"--benchmarking-params-file={params_file}",
            f"--benchmarking-output-dir={out_dir}"]
    print("$ " + " ".join(argv), flush=True)
    with open(out_dir.parent / f"{out_dir.name}.log", "wb") as log:
        code = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, check=False).returncode
    if code:
        print(f"critest exited {code}; its output: {log.name}", flush=True)
    return code


@contextlib.contextmanager
def crid_socket(registry: Registry, work: Path) -> Iterator[str]:
    with crid_on(registry, work / "crid", ["--default-runtime", HANDLER,
                                           "--log-level", "warning"]) as daemon:
        yield str(daemon.socket)


@contextlib.contextmanager
def containerd_socket(registry: Registry) -> Iterator[str]:
    net = PodNet()
    try:
        with containerd_daemon(registry, bridge_conflist(net),
                               mirrors=MIRRORED_REGISTRIES) as containerd:
            yield str(containerd.workdir / "containerd.sock")
    finally:
        net.cleanup()


def main(argv: Sequence[str] | None = None) -> int:
    parser = command.parser(
        "e2e.bench.critest_bench", __doc__,
        pods=(40, "pod lifecycles"), containers=(40, "container lifecycles"),
        parallel=(4, "pod and container lifecycles at a time"),
        pulls=(10, "image pull/status/remove cycles (and ListImages calls)"),
        pull_parallel=(2, "image cycles at a time"))
    parser.add_argument("--critest", default=os.environ.get("CRITEST", ""),
                        help="critest binary, built by hand (default: $CRITEST)")
    args = parser.parse_args(argv)
    critest = find_critest(args.critest) if args.critest else None
    if critest is None:
        print("critest_bench: skipped: no critest binary (build it by hand from "
              "kubernetes-sigs/cri-tools, pass --critest PATH or set CRITEST)"
              + (f"; {args.critest!r} is not one" if args.critest else ""))
        return 0
    work = Path(tempfile.mkdtemp(prefix="crid-critest-bench-", dir="/tmp"))
    params_file = work / "params.yaml"
    params_file.write_text(json.dumps(params(args.pods, args.containers, args.parallel,
                                             args.pulls, args.pull_parallel)))
    found: dict[str, Medians] = {}
    failed = 0
    try:
        with lookalike_registry() as registry:
            for name, runtime in (("crid", crid_socket(registry, work)),
                                  ("containerd", containerd_socket(registry))):
                with runtime as socket:
                    failed |= run_critest(critest, socket, params_file, work / f"results-{name}")
                found[name] = medians(work / f"results-{name}")
    finally:
        if failed:
            print(f"critest logs and results kept in {work}")
        else:
            remove_workdir(work)
    print(f"critest -benchmark, {HANDLER} handler vs containerd (runc), {os.cpu_count()} cores: "
          f"{args.pods} pods, {args.containers} containers at {args.parallel} at a time; "
          f"{args.pulls} pulls of {BUSYBOX} at {args.pull_parallel}; medians")
    print(report(found))
    return 1 if failed or not all(found.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
