"""The soak's load: pods created, probed and removed, with a floor of pods alive.

Each worker, in a loop: runs a pod with one container (busybox ``sleep``),
probes it with ExecSync as kubelet's liveness probe would, lists and asks for
stats as kubelet's loops do, probes a pod picked at random, and then removes
the oldest pod (stop, remove container, stop and remove pod). A new pod is
always running before an old one goes, so at least ``pods`` are alive at any
moment. Every call must succeed: a soak has no kills to excuse an error.
"""

from __future__ import annotations

import collections
import dataclasses
import random
import threading
from typing import Any

import grpc
from cri_api.v1 import api_pb2, api_pb2_grpc

from e2e.sandbox.pods import pod_config

CALL_TIMEOUT = 60
MAX_ERRORS = 20  # kept for the report; the run fails on the first


@dataclasses.dataclass(frozen=True)
class Pod:
    id: str
    container: str


class Churn:
    """``workers`` threads keeping at least ``pods`` pods alive and turning them over."""

    def __init__(self, runtime: api_pb2_grpc.RuntimeServiceStub, image: str, *,
                 pods: int, workers: int, rng: random.Random) -> None:
        self._runtime = runtime
        self._image = image
        self._floor = pods
        self._rng = rng
        self._lock = threading.Lock()
        self._alive: collections.deque[Pod] = collections.deque()
        self._probed: set[Pod] = set()  # not to be removed while a worker probes it
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, name=f"soak-{i}", daemon=True)
                         for i in range(workers)]
        self.operations = 0
        self.cycles = 0
        self.errors: list[str] = []

    @property
    def alive(self) -> int:
        with self._lock:
            return len(self._alive)

    def fill(self) -> None:
        """Start the floor of pods, one by one, before the workers begin."""
        while self.alive < self._floor:
            self._keep(self._start_pod())

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=CALL_TIMEOUT * 5)

    def remove_all(self) -> None:
        with self._lock:
            left, self._alive = list(self._alive), collections.deque()
        for pod in left:
            self._remove_pod(pod)

    # --- a worker -------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set() and not self.errors:
            try:
                self._cycle()
            except grpc.RpcError as exc:
                self._error(f"{exc.code().name}: {exc.details()}")
            except Exception as exc:  # a worker must not die silently
                self._error(repr(exc))

    def _cycle(self) -> None:
        self._keep(self._start_pod())
        with self._lock:
            picked = self._rng.choice([p for p in self._alive if p not in self._probed])
            self._probed.add(picked)
        try:
            self._probe(picked)
            self._call("ContainerStatus", api_pb2.ContainerStatusRequest(
                container_id=picked.container))
        finally:
            with self._lock:
                self._probed.discard(picked)
        self._call("ListPodSandbox", api_pb2.ListPodSandboxRequest())
        self._call("ListContainers", api_pb2.ListContainersRequest())
        self._call("ListContainerStats", api_pb2.ListContainerStatsRequest())
        with self._lock:
            oldest = None
            if len(self._alive) > self._floor:
                oldest = next(p for p in self._alive if p not in self._probed)
                self._alive.remove(oldest)
        if oldest is not None:
            self._remove_pod(oldest)
        with self._lock:
            self.cycles += 1

    def _keep(self, pod: Pod) -> None:
        with self._lock:
            self._alive.append(pod)

    def _start_pod(self) -> Pod:
        config = pod_config()
        pod_id = self._call("RunPodSandbox",
                            api_pb2.RunPodSandboxRequest(config=config)).pod_sandbox_id
        container = api_pb2.ContainerConfig(
            metadata=api_pb2.ContainerMetadata(name="main"),
            image=api_pb2.ImageSpec(image=self._image), command=["/bin/sleep", "3600"])
        container_id = self._call("CreateContainer", api_pb2.CreateContainerRequest(
            pod_sandbox_id=pod_id, config=container, sandbox_config=config)).container_id
        self._call("StartContainer", api_pb2.StartContainerRequest(container_id=container_id))
        pod = Pod(pod_id, container_id)
        self._probe(pod)
        return pod

    def _probe(self, pod: Pod) -> None:
        out = self._call("ExecSync", api_pb2.ExecSyncRequest(
            container_id=pod.container, cmd=["/bin/echo", "soak"], timeout=10))
        if (out.exit_code, out.stdout) != (0, b"soak\n"):
            self._error(f"probe of {pod.container} gave {out.exit_code} {out.stdout!r} "
                        f"{out.stderr!r}")

    def _remove_pod(self, pod: Pod) -> None:
        # sleep is PID 1 of its namespace and ignores SIGTERM: no grace period.
        self._call("StopContainer", api_pb2.StopContainerRequest(
            container_id=pod.container, timeout=0))
        self._call("RemoveContainer", api_pb2.RemoveContainerRequest(
            container_id=pod.container))
        self._call("StopPodSandbox", api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod.id))
        self._call("RemovePodSandbox", api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod.id))

    def _call(self, method: str, request: Any) -> Any:
        response = getattr(self._runtime, method)(request, timeout=CALL_TIMEOUT)
        with self._lock:
            self.operations += 1
        return response

    def _error(self, text: str) -> None:
        with self._lock:
            if len(self.errors) < MAX_ERRORS:
                self.errors.append(text)
