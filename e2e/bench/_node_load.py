"""The load of a busy node, driven over CRI on one runtime: a burst of
concurrent pod starts, a node full of pods, kubelet's probes, and the CPU the
runtime's own processes spend meanwhile.

Used by ``e2e.bench.node_scale`` on crid and on containerd alike; what a pod
is (its config, its ``sleep`` containers) comes from ``e2e.bench.pods`` and
``e2e.bench.list_calls``.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cri_api.v1 import api_pb2, api_pb2_grpc

from e2e.bench.list_calls import populate_pod
from e2e.bench.pods import Runtime, runtime_pids, start_pod, stop_pod

# Setting up and tearing down the node is not what is timed: a few workers
# finish it sooner without swamping two cores.
SETUP_WORKERS = 4
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
EXEC_TIMEOUT = 10  # kubelet's probe timeout is 1 s by default; this is a bound, not a probe


def p50_p99(values: Sequence[float]) -> tuple[float, float]:
    """The median and the 99th percentile (inclusive: within the values seen)."""
    if len(values) < 2:
        return values[0], values[0]
    return statistics.median(values), statistics.quantiles(values, n=100,
                                                           method="inclusive")[98]


def burst(rt: Runtime, pods: int) -> tuple[float, list[float], list[tuple[str, str]]]:
    """``pods`` pods (one ``sleep`` container each) started at once, as kubelet
    does after a drain: RunPodSandbox, CreateContainer, StartContainer and a
    ContainerStatus until RUNNING, one thread per pod, all released together.
    The wall time (s) until all run, each pod's time (ms), and the pods."""
    gate = threading.Barrier(pods + 1)
    per_pod: list[float] = []
    made: list[tuple[str, str]] = []

    def one() -> None:
        gate.wait()
        began = time.perf_counter()
        made.append(start_pod(rt))
        per_pod.append((time.perf_counter() - began) * 1000)

    with ThreadPoolExecutor(max_workers=pods) as pool:
        futures = [pool.submit(one) for _ in range(pods)]
        gate.wait()
        began = time.perf_counter()
        for future in futures:
            future.result()
        wall = time.perf_counter() - began
    return wall, per_pod, made


def stop_pods(rt: Runtime, pods: Sequence[tuple[str, str]]) -> None:
    """Stop and remove pods of one container (``burst``'s), a few at a time."""
    with ThreadPoolExecutor(max_workers=SETUP_WORKERS) as pool:
        list(pool.map(lambda pod: stop_pod(rt, *pod), pods))


def fill(rt: Runtime, pods: int, per_pod: int) -> list[str]:
    """``pods`` pods of ``per_pod`` running containers, a few pods at a time;
    the pod ids. Fails unless all the containers run."""
    with ThreadPoolExecutor(max_workers=SETUP_WORKERS) as pool:
        made = list(pool.map(lambda _: populate_pod(rt.stub, rt.image, rt.cgroup_root,
                                                    per_pod, rt.handler), range(pods)))
    running = running_containers(rt.stub)
    if running != pods * per_pod:
        raise RuntimeError(f"{rt.name}: {running} of {pods * per_pod} containers running")
    return made


def running_containers(stub: api_pb2_grpc.RuntimeServiceStub, timeout: float = 30) -> int:
    """How many containers ListContainers says are RUNNING."""
    listed = stub.ListContainers(api_pb2.ListContainersRequest(), timeout=timeout).containers
    return sum(1 for c in listed if c.state == api_pb2.CONTAINER_RUNNING)


def empty(rt: Runtime) -> None:
    """Stop and remove every pod (and so its containers), a few at a time."""
    pods = rt.stub.ListPodSandbox(api_pb2.ListPodSandboxRequest(), timeout=30).items

    def one(pod_id: str) -> None:
        rt.stub.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod_id), timeout=60)
        rt.stub.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod_id),
                                 timeout=60)

    with ThreadPoolExecutor(max_workers=SETUP_WORKERS) as pool:
        list(pool.map(one, [pod.id for pod in pods]))


def probe_targets(stub: api_pb2_grpc.RuntimeServiceStub) -> list[str]:
    """One container per pod: the one a liveness probe would run in."""
    first: dict[str, str] = {}
    for container in sorted(stub.ListContainers(api_pb2.ListContainersRequest(),
                                                timeout=30).containers,
                            key=lambda c: c.metadata.name):
        first.setdefault(container.pod_sandbox_id, container.id)
    return list(first.values())


def exec_true(stub: api_pb2_grpc.RuntimeServiceStub, container_id: str) -> float:
    """One ExecSync ``true`` (a probe); its time (ms). Fails unless it exits 0."""
    began = time.perf_counter()
    answer = stub.ExecSync(api_pb2.ExecSyncRequest(container_id=container_id, cmd=["/bin/true"],
                                                   timeout=EXEC_TIMEOUT),
                           timeout=EXEC_TIMEOUT + 5)
    taken = (time.perf_counter() - began) * 1000
    if answer.exit_code != 0:
        raise RuntimeError(f"ExecSync true in {container_id}: exit {answer.exit_code}")
    return taken


def exec_one_at_a_time(stub: api_pb2_grpc.RuntimeServiceStub, targets: Sequence[str],
                       calls: int) -> list[float]:
    """``calls`` ExecSync ``true``, one after the other over ``targets``, after one to warm up."""
    exec_true(stub, targets[0])
    return [exec_true(stub, targets[index % len(targets)]) for index in range(calls)]


def cpu_ticks(pids: set[int]) -> dict[int, int]:
    """utime + stime + cutime + cstime of each of ``pids`` still there: a process's
    own CPU time and that of the children it reaped (crid and the shims are
    subreapers, so an exec's short-lived helpers are counted there)."""
    found = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            found[pid] = sum(int(field) for field in fields[11:15])
    return found


def probed(rt: Runtime, targets: Sequence[str], period: float, seconds: float,
           ) -> tuple[list[float], float]:
    """Every target probed (ExecSync ``true``) once per ``period`` seconds, spread
    evenly, for ``seconds``: each probe's time (ms) and the CPU seconds the
    runtime's processes (``runtime_pids``: daemon, monitors or shims) spent per
    wall second meanwhile. A process that ended in the window counts through
    its reaper's cutime when that is one of them (crid, a shim)."""
    step = period / len(targets)
    rounds = max(1, round(seconds / period))
    times: list[float] = []
    before = cpu_ticks(runtime_pids(rt.workdir))
    began = time.perf_counter()
    # A pool wide enough that a slow probe does not delay the next ones, as
    # kubelet's probe workers (one per container) don't wait for each other.
    with ThreadPoolExecutor(max_workers=16) as pool:
        futures = []
        for index in range(rounds * len(targets)):
            delay = began + index * step - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(exec_true, rt.stub, targets[index % len(targets)]))
        times = [future.result() for future in futures]
    # The window is the schedule's: a probe still running at its end is counted whole.
    wall = time.perf_counter() - began
    after = cpu_ticks(runtime_pids(rt.workdir))
    spent = sum(ticks - before.get(pid, 0) for pid, ticks in after.items())
    return times, spent / CLOCK_TICKS / wall


def timed(what: Callable[[], object]) -> float:
    """Seconds ``what`` took."""
    began = time.perf_counter()
    what()
    return time.perf_counter() - began
