"""crid-runtime vs runc, same run, same bundle: median wall time of
create + start + wait + delete of a ``/bin/true`` container, driven the way
conmon drives a runtime (separate invocations; we are the subreaper that reaps
the container), plus the start-up of the bare entry point.

    python -m e2e.bench.runtime [--rounds N]
"""

from __future__ import annotations

import ctypes
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from e2e.bench import _command as command
from e2e.fixtures.bundle import REPO, RUNTIMES, Bundle

PR_SET_CHILD_SUBREAPER = 36


STEPS = ("create", "start", "wait", "delete")


def lifecycle(binary: str, root: str, bundle: Path, tmp: Path) -> dict[str, float]:
    """Seconds per step of one container's life, as conmon and crid drive it."""
    cid = f"bench-{uuid.uuid4().hex[:10]}"
    pid_file = tmp / f"{cid}.pid"
    t = [time.perf_counter()]
    _quietly([binary, "--root", root, "create", "--bundle", str(bundle), "--pid-file",
              str(pid_file), cid])
    t.append(time.perf_counter())
    pid = int(pid_file.read_text())
    _quietly([binary, "--root", root, "start", cid])
    t.append(time.perf_counter())
    os.waitpid(pid, 0)
    t.append(time.perf_counter())
    _quietly([binary, "--root", root, "delete", cid])
    t.append(time.perf_counter())
    return {step: t[i + 1] - t[i] for i, step in enumerate(STEPS)}


def interleaved_lives(binaries: dict[str, str], bundle: Path, work: Path, rounds: int
                      ) -> dict[str, list[dict[str, float]]]:
    """``rounds`` lives of ``bundle`` per runtime binary, each with its own
    ``--root`` under ``work``, after one to warm caches; interleaved, so drift
    on the machine hits all alike."""
    roots = {name: str(work / f"root-{index}") for index, name in enumerate(binaries)}
    for name, binary in binaries.items():
        lifecycle(binary, roots[name], bundle, work)
    times: dict[str, list[dict[str, float]]] = {name: [] for name in binaries}
    for _ in range(rounds):
        for name, binary in binaries.items():
            times[name].append(lifecycle(binary, roots[name], bundle, work))
    return times


def report_lives(times: dict[str, list[dict[str, float]]], rounds: int) -> dict[str, float]:
    """Print the median of each step and of the whole life; the medians of the whole (ms)."""
    total = {n: statistics.median(sum(r.values()) for r in v) * 1000 for n, v in times.items()}
    print(f"create+start+wait+delete of /bin/true, median of {rounds} (ms):")
    print(f"  {'':13s} {'total':>7s} " + " ".join(f"{s:>7s}" for s in STEPS))
    for name, lives in times.items():
        steps = " ".join(f"{statistics.median(r[s] for r in lives) * 1000:7.1f}" for s in STEPS)
        print(f"  {name[:13]:13s} {total[name]:7.1f} {steps}")
    return total


def _quietly(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def startup(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def interpreter_costs(rounds: int) -> dict[str, float]:
    """Where a Python runtime's start-up goes: bare interpreter, site, our entry point."""
    py = str(REPO / ".venv" / "bin" / "python")
    cmds = {
        "python -IS -c pass (bare interpreter)": [py, "-IS", "-c", "pass"],
        "python -c pass (+ site, incl. the editable-install finder)": [py, "-c", "pass"],
        "crid-runtime --version (the -IS launcher)": [RUNTIMES["crid-runtime"], "--version"],
        "runc --version": [RUNTIMES["runc"], "--version"],
    }
    return {k: statistics.median(startup(c) for _ in range(rounds)) * 1000
            for k, c in cmds.items()}


def main(argv: list[str] | None = None) -> int:
    rounds = command.parser("e2e.bench.runtime", __doc__, rounds=(30, "lives of each runtime")
                            ).parse_args(argv).rounds
    # Deployed code has bytecode caches (pip writes them); a dev tree may not.
    subprocess.run([sys.executable, "-P", "-m", "compileall", "-q", str(REPO / "oci"),
                    str(REPO / "crid")], check=True, stdout=subprocess.DEVNULL)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    tmp = Path(tempfile.mkdtemp(prefix="crid-bench-"))
    try:
        b = Bundle(tmp / "bundle", f"crid-bench-{uuid.uuid4().hex[:8]}")
        # The minimal container: /bin/true with the default mounts and namespaces.
        b.config["linux"]["cgroupsPath"] = ""
        b.write(["/bin/true"])
        times = interleaved_lives(RUNTIMES, b.path, tmp, rounds)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    med = report_lives(times, rounds)
    print("start-up, median (ms):")
    for what, ms in interpreter_costs(rounds).items():
        print(f"  {ms:6.1f}  {what}")
    ratio = med["crid-runtime"] / med["runc"]
    # Issue 19: a separate Python process cannot start faster than the interpreter.
    print(f"ratio crid-runtime/runc: {ratio:.2f} (target <= 1.25)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
