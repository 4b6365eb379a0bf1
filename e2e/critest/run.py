"""Run critest against a private crid with the look-alike images, and summarise.

``python -m e2e.critest.run [--critest PATH] [--nri] [--keep] [-- extra critest/ginkgo args]``

``--nri`` gives that crid an NRI socket in its work dir and critest
``-nri-socket`` with it, so critest's 13 NRI specs run (critest connects as a
plugin) instead of skipping.

Starts a local registry holding the look-alikes (``e2e.critest.images``), a
private crid whose registries conf sends critest's registries there and whose
pod network is a bridge/subnet of its own, runs the given critest binary
against crid's socket with a ginkgo JSON report, and prints passed / failed /
skipped counts and, per failure, the spec and the first lines of its message.
Exit code: critest's (0 when every spec passed), 2 when critest is missing.

critest is never built here: build it by hand from kubernetes-sigs/cri-tools
(``make critest``) and pass its path, or put it on PATH.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cri_api.v1 import api_pb2

from e2e.critest.images import push_all, registries_conf
from e2e.fixtures.daemon import CridDaemon, remove_workdir
from e2e.fixtures.registry import Registry
from e2e.sandbox.pods import PodNet, remove_all_pods

MESSAGE_LINES = 6
# Failures no runtime can avoid with look-alike images: spec text -> why.
EXPECTED_HERE = {
    "public image with digest should be pulled and removed":
        "pinned to the upstream image's digest, which no look-alike can have",
}


@dataclass
class Failure:
    name: str
    state: str
    message: str
    location: str


@dataclass
class Summary:
    counts: dict[str, int] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    # Why specs were skipped (the spec's own Skip message; not-focused ones have none).
    skip_reasons: dict[str, int] = field(default_factory=dict)


def spec_name(spec: dict[str, Any]) -> str:
    # Suite nodes (BeforeSuite, AfterEach of a container...) have no leaf text.
    leaf = spec.get("LeafNodeText") or spec.get("LeafNodeType", "?")
    return " ".join([*(spec.get("ContainerHierarchyTexts") or []), str(leaf)])


def summarise(report: list[dict[str, Any]]) -> Summary:
    """Counts by state and the failures of a ginkgo JSON report."""
    summary = Summary()
    for suite in report:
        for spec in suite.get("SpecReports") or []:
            # Suite nodes (BeforeSuite, ...) only count when they go wrong.
            is_spec = spec.get("LeafNodeType") == "It"
            state = str(spec.get("State", "unknown"))
            if is_spec:
                summary.counts[state] = summary.counts.get(state, 0) + 1
            reason = str((spec.get("Failure") or {}).get("Message", "")).strip()
            if is_spec and state == "skipped" and reason:
                reason = reason.splitlines()[0]
                summary.skip_reasons[reason] = summary.skip_reasons.get(reason, 0) + 1
            if state in ("passed", "skipped", "pending"):
                continue
            failure = spec.get("Failure") or {}
            location = failure.get("Location") or {}
            summary.failures.append(Failure(
                name=spec_name(spec),
                state=state,
                message=str(failure.get("Message", "")).strip(),
                location=f"{location.get('FileName', '?')}:{location.get('LineNumber', '?')}",
            ))
    return summary


def format_summary(summary: Summary) -> str:
    order = ["passed", "failed", "skipped", "pending", "panicked", "timedout", "interrupted"]
    states = order + sorted(set(summary.counts) - set(order))
    lines = ["critest: " + ", ".join(
        f"{summary.counts[s]} {s}" for s in states if summary.counts.get(s))]
    lines += [f"  {count} skipped: {reason}"
              for reason, count in sorted(summary.skip_reasons.items(), key=lambda r: -r[1])]
    for failure in summary.failures:
        lines.append(f"\n[{failure.state}] {failure.name}\n  at {failure.location}")
        lines += [f"  expected here: {why}" for text, why in EXPECTED_HERE.items()
                  if text in failure.name]
        message = failure.message.splitlines()[:MESSAGE_LINES]
        lines += [f"  | {line}" for line in message]
    return "\n".join(lines)


def leftovers(daemon: CridDaemon) -> str:
    """critest removes every pod and container it made: say what it left behind."""
    pods = daemon.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items
    containers = daemon.runtime.ListContainers(api_pb2.ListContainersRequest()).containers
    if not pods and not containers:
        return "critest left no pods or containers behind"
    names = [p.metadata.name for p in pods] + [c.metadata.name for c in containers]
    return f"critest left {len(pods)} pods, {len(containers)} containers: {', '.join(names)}"


def find_critest(given: str) -> str | None:
    if os.sep in given:
        return given if os.access(given, os.X_OK) else None
    return shutil.which(given)


def nri_toml(socket: Path) -> str:
    """crid's NRI section for critest: its socket, and a request timeout longer
    than the 2 s critest holds a plugin's Synchronize open (the default, 2 s, would
    drop that plugin, and the spec would skip instead of pass)."""
    return (f'\n[crid.nri]\nenable = true\nsocket_path = "{socket}"\n'
            'plugin_path = ""\nrequest_timeout_ms = 10000\n')


@contextlib.contextmanager
def lookalike_registry() -> Iterator[Registry]:
    """A local registry holding every look-alike; stopped after."""
    with Registry() as registry:
        print(f"pushing look-alikes to {registry.url} ...", flush=True)
        push_all(registry)
        yield registry


@contextlib.contextmanager
def crid_on(registry: Registry, workdir: Path, extra_args: Sequence[str],
            nri_socket: Path | None = None) -> Iterator[CridDaemon]:
    """A crid on a pod network of its own that pulls critest's registries from
    ``registry``; its pods, the daemon and the network removed after."""
    net = PodNet()
    toml = net.config_toml() + (nri_toml(nri_socket) if nri_socket else "")
    daemon = CridDaemon(workdir, extra_args=extra_args, config_toml=toml)
    daemon.registries_conf.write_text(registries_conf(registry))
    try:
        daemon.start()
        yield daemon
    finally:
        if daemon.process is not None:
            with contextlib.suppress(Exception):
                remove_all_pods(daemon)
            daemon.stop()
        net.cleanup()


@contextlib.contextmanager
def crid_with_lookalikes(workdir: Path, extra_args: Sequence[str],
                         nri_socket: Path | None = None) -> Iterator[CridDaemon]:
    """A registry with the look-alikes and a crid that pulls from it; all removed after."""
    with lookalike_registry() as registry, \
            crid_on(registry, workdir, extra_args, nri_socket) as daemon:
        yield daemon


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--critest", default="critest", help="critest binary (default: on PATH)")
    parser.add_argument("--runtime", default="runc",
                        help="crid's default runtime handler (--default-runtime)")
    parser.add_argument("--report", type=Path, help="where to keep the ginkgo JSON report")
    parser.add_argument("--keep", action="store_true", help="keep crid's workdir and log")
    parser.add_argument("--nri", action="store_true",
                        help="enable NRI in crid and run critest's NRI specs (-nri-socket)")
    parser.add_argument("extra", nargs="*", help="after --: extra critest/ginkgo arguments")
    args = parser.parse_args(argv)

    critest = find_critest(args.critest)
    if critest is None:
        print(f"critest not found ({args.critest!r}): build it by hand from "
              "kubernetes-sigs/cri-tools (make critest) and pass --critest PATH",
              file=sys.stderr)
        return 2

    workdir = Path(tempfile.mkdtemp(prefix="crid-critest-", dir="/tmp"))
    report = args.report or workdir / "critest-report.json"
    code = 1
    try:
        nri_socket = workdir / "nri.sock" if args.nri else None
        with crid_with_lookalikes(workdir, ["--default-runtime", args.runtime],
                                  nri_socket) as daemon:
            command = [critest, "--runtime-endpoint", f"unix://{daemon.socket}",
                       "--image-endpoint", f"unix://{daemon.socket}",
                       f"--ginkgo.json-report={report}",
                       *([f"-nri-socket={nri_socket}"] if nri_socket else []), *args.extra]
            print("$ " + " ".join(command), flush=True)
            code = subprocess.run(command, check=False).returncode
            print(leftovers(daemon))
        if report.exists():
            print(format_summary(summarise(json.loads(report.read_text()))))
        else:
            print(f"critest wrote no report (exit {code})")
    finally:
        if args.keep:
            print(f"crid workdir kept: {workdir} (log: {workdir / 'crid.log'})")
        else:
            remove_workdir(workdir)
    return code


if __name__ == "__main__":
    sys.exit(main())
