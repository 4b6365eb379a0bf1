"""Workers: threads, each with its own gRPC channel, driving a kubelet-like mix.

Each worker runs pods, pulls, creates and starts containers (most sleep, some
exit on their own), execs into them, stops and removes them and their pods,
and asks for stats and lists. Its choices come from its own ``random.Random``
seeded from the run's seed; their timing against the killer does not.

``Chaos`` is what the workers and the killer share: whether the workers
should park (so the daemon can be checked against still ledgers), when kills
happened (so an error a kill explains is excused), and the problems found.
An error no kill explains is a problem; so is any failure of a worker's first
call after it reconnects.
"""

from __future__ import annotations

import dataclasses
import math
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
from cri_api.v1 import api_pb2, api_pb2_grpc

from e2e.chaos.ledger import (
    CREATED,
    EXIT_CODE,
    READY,
    STARTED,
    STOPPED,
    ContainerFact,
    Ledger,
    PodFact,
)
from e2e.sandbox.pods import namespace_options, pod_config

CALL_TIMEOUT = 30
PARK_TIMEOUT = 90
HANDLER = "crid"
MAX_PODS = 2
MAX_CONTAINERS_PER_POD = 3
# Short reconnect backoff: the daemon is back within a second or two, and a
# channel left in gRPC's default backoff (up to two minutes) would not notice.
CHANNEL_OPTIONS = [("grpc.initial_reconnect_backoff_ms", 100),
                   ("grpc.min_reconnect_backoff_ms", 100),
                   ("grpc.max_reconnect_backoff_ms", 500)]
DOWN_BACKOFF = 0.05
CREATES = ("CreateContainer", "RunPodSandbox")


class Chaos:
    """The state workers and killer share."""

    def __init__(self, workers: int) -> None:
        self._cond = threading.Condition()
        self._workers = workers
        self._parked = 0
        self._generation = 0
        self.pause = False
        self.stopping = False
        # (killed at, back at) of daemon kills since the last resume.
        self.outage: tuple[float, float] | None = None
        self.kill_times: list[float] = []  # conmon and runtime kills
        self.conmon_killed: set[str] = set()
        self.problems: list[str] = []
        self.operations = 0
        self.unknown_outcomes = 0

    # --- the killer's side --------------------------------------------------

    def daemon_down(self) -> None:
        with self._cond:
            self.outage = (time.monotonic(), math.inf)

    def daemon_up(self) -> None:
        with self._cond:
            assert self.outage is not None
            self.outage = (self.outage[0], time.monotonic())

    def killed_process(self, *, conmon_of: str = "") -> None:
        with self._cond:
            self.kill_times.append(time.monotonic())
            if conmon_of:
                self.conmon_killed.add(conmon_of)

    def park_all(self) -> None:
        """Ask every worker to park after its current call; wait until all have."""
        with self._cond:
            self.pause = True
            if not self._cond.wait_for(lambda: self._parked == self._workers, PARK_TIMEOUT):
                raise RuntimeError(f"only {self._parked} of {self._workers} workers parked "
                                   f"within {PARK_TIMEOUT}s: a call hangs")

    def resume_all(self) -> None:
        self._release()
        with self._cond:
            self._cond.wait_for(lambda: self._parked == 0, PARK_TIMEOUT)

    def stop(self) -> None:
        self._release(stopping=True)

    def _release(self, *, stopping: bool = False) -> None:
        with self._cond:
            self.stopping = self.stopping or stopping
            self.pause = False
            self.outage = None
            self._generation += 1
            self._cond.notify_all()

    # --- the workers' side --------------------------------------------------

    def park(self) -> None:
        with self._cond:
            self._parked += 1
            generation = self._generation
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._generation != generation)
            self._parked -= 1
            self._cond.notify_all()

    def problem(self, text: str) -> None:
        with self._cond:
            self.problems.append(text)

    def counted(self, *, unknown: bool = False) -> None:
        with self._cond:
            self.operations += 1
            self.unknown_outcomes += unknown

    def cut_off(self, started: float, code: grpc.StatusCode) -> bool:
        """Did a daemon kill cut off a call that began at ``started``? One that began
        after the restart may still meet the channel in its reconnect backoff."""
        with self._cond:
            return self.outage is not None and (
                started < self.outage[1] or code == grpc.StatusCode.UNAVAILABLE)

    def process_killed_since(self, started: float) -> bool:
        with self._cond:
            return any(t >= started for t in self.kill_times)


OK, UNKNOWN, FAILED = "ok", "unknown", "failed"


@dataclasses.dataclass
class Outcome:
    result: str
    response: Any = None


class Worker:
    """One kubelet-like client; its ledger is what crid told it."""

    def __init__(self, index: int, socket: Path, image: str, chaos: Chaos,
                 rng: random.Random, *, shared_pid: bool = False) -> None:
        self.thread = threading.Thread(target=self.run, name=f"chaos-worker-{index}",
                                       daemon=True)
        self.index = index
        self.image = image
        self.chaos = chaos
        self.rng = rng
        self.ledger = Ledger(index)
        self.shared_pid = shared_pid
        self._channel = grpc.insecure_channel(f"unix://{socket}", options=CHANNEL_OPTIONS)
        self._runtime = api_pb2_grpc.RuntimeServiceStub(self._channel)
        self._images = api_pb2_grpc.ImageServiceStub(self._channel)
        self._count = 0
        self._fresh = False  # the next call is the first after a reconnect

    def run(self) -> None:
        try:
            while not self.chaos.stopping:
                if self.chaos.pause:
                    self.chaos.park()
                    self._reconnect()
                    continue
                self._step()
        except Exception as exc:
            self.chaos.problem(f"worker {self.index} crashed: {exc!r}")
            self.chaos.park()  # stay countable as parked
        finally:
            self._channel.close()

    def _reconnect(self) -> None:
        if self.chaos.stopping:
            return
        try:
            grpc.channel_ready_future(self._channel).result(timeout=15)
        except grpc.FutureTimeoutError:
            self.chaos.problem(f"worker {self.index}: no connection within 15s of a restart")
        self._fresh = True

    # --- calls ----------------------------------------------------------------

    def _call(self, method: str, request: Any, *, container: ContainerFact | None = None,
              timeout: float = CALL_TIMEOUT) -> Outcome:
        stub = self._images if method in ("PullImage", "ListImages") else self._runtime
        started = time.monotonic()
        fresh, self._fresh = self._fresh, False
        try:
            response = getattr(stub, method)(request, timeout=timeout)
        except grpc.RpcError as exc:
            code, details = exc.code(), exc.details()
            if self.chaos.cut_off(started, code):
                self.chaos.counted(unknown=True)
                time.sleep(DOWN_BACKOFF)  # the daemon is gone: don't spin
                return Outcome(UNKNOWN)
            if container is not None and container.id in self.chaos.conmon_killed \
                    and method not in ("StopContainer", "RemoveContainer"):
                self.chaos.counted(unknown=True)
                return Outcome(UNKNOWN)  # its monitor is gone: the daemon may not know
            if method in CREATES and self.chaos.process_killed_since(started):
                self.chaos.counted()
                return Outcome(FAILED)  # a runtime or monitor killed mid-create
            self.chaos.problem(
                f"worker {self.index}: {method} failed with {code.name}: {details}"
                + (" (its first call after reconnecting)" if fresh else ""))
            self.chaos.counted()
            return Outcome(FAILED)
        self.chaos.counted()
        return Outcome(OK, response)

    # --- the mix ----------------------------------------------------------------

    def _step(self) -> None:
        led = self.ledger
        ready = [p for p in led.pods if p.state == READY and not p.pending]
        running = [c for c in led.containers if c.state == STARTED and not c.pending
                   and not c.exits and c.id not in self.chaos.conmon_killed]
        started = [c for c in led.containers if c.state == STARTED and not c.pending]
        stopped = [c for c in led.containers if c.state in (CREATED, STOPPED) and not c.pending]
        roomy = [p for p in ready
                 if sum(c.pod is p for c in led.containers) < MAX_CONTAINERS_PER_POD]
        choices: list[tuple[Callable[[], None], float]] = [
            (self._pull, 0.3), (self._stats, 1.0), (self._list, 1.0),
        ]
        if len(led.pods) < MAX_PODS:
            choices.append((self._run_pod, 3.0 if not led.pods else 0.8))
        if roomy:
            choices.append((lambda: self._create_start(self.rng.choice(roomy)), 4.0))
        if running:
            choices.append((lambda: self._exec(self.rng.choice(running)), 2.0))
        if started:
            choices.append((lambda: self._stop_container(self.rng.choice(started)), 1.2))
        if stopped:
            choices.append((lambda: self._remove(self.rng.choice(stopped)), 1.5))
        settled = [p for p in led.pods if not p.pending]
        if settled:
            choices.append((lambda: self._stop_remove_pod(self.rng.choice(settled)), 0.4))
        actions, weights = zip(*choices, strict=True)
        self.rng.choices(actions, weights)[0]()

    def _name(self, kind: str) -> str:
        self._count += 1
        return f"w{self.index}-{kind}{self._count}"

    def _run_pod(self) -> None:
        name = self._name("p")
        # kubelet's default: each container its own PID namespace; shared (an
        # infra process) only when asked for (shareProcessNamespace).
        shared = self.shared_pid and self.rng.random() < 1 / 3
        pid = api_pb2.POD if shared else api_pb2.CONTAINER
        pod = PodFact(name, pod_config(name, linux=namespace_options(pid=pid)))
        self.ledger.pods.append(pod)
        out = self._call("RunPodSandbox", api_pb2.RunPodSandboxRequest(
            config=pod.config, runtime_handler=HANDLER))
        if out.result == OK:
            pod.id = out.response.pod_sandbox_id
        elif out.result == UNKNOWN:
            pod.pending = "run"
        else:
            self.ledger.pods.remove(pod)
            self.ledger.refused.append((pod.name, ""))

    def _create_start(self, pod: PodFact) -> None:
        exits = self.rng.random() < 0.2
        c = ContainerFact(self._name("c"), pod, exits)
        command = ["/bin/sh", "-c", f"sleep 1; exit {EXIT_CODE}"] if exits \
            else ["/bin/sleep", "3600"]
        config = api_pb2.ContainerConfig(
            metadata=api_pb2.ContainerMetadata(name=c.name),
            image=api_pb2.ImageSpec(image=self.image), command=command)
        self.ledger.containers.append(c)
        out = self._call("CreateContainer", api_pb2.CreateContainerRequest(
            pod_sandbox_id=pod.id, config=config, sandbox_config=pod.config))
        if out.result == UNKNOWN:
            c.pending = "create"
            return
        if out.result == FAILED:
            self.ledger.containers.remove(c)
            self.ledger.refused.append((pod.name, c.name))
            return
        c.id = out.response.container_id
        if self.rng.random() < 0.1:
            return  # left created, as a kubelet between its calls would
        out = self._call("StartContainer", api_pb2.StartContainerRequest(container_id=c.id),
                         container=c)
        if out.result == OK:
            c.state = STARTED
        elif out.result == UNKNOWN:
            c.pending = "start"

    def _exec(self, c: ContainerFact) -> None:
        out = self._call("ExecSync", api_pb2.ExecSyncRequest(
            container_id=c.id, cmd=["/bin/echo", "chaos"], timeout=10), container=c)
        if out.result == OK and (out.response.exit_code, out.response.stdout) != (0, b"chaos\n"):
            self.chaos.problem(f"worker {self.index}: exec in {c.id} gave "
                               f"{out.response.exit_code} {out.response.stdout!r} "
                               f"{out.response.stderr!r}")

    def _stop_container(self, c: ContainerFact) -> None:
        # sleep is PID 1 of its namespace and ignores SIGTERM: a short grace period.
        out = self._call("StopContainer", api_pb2.StopContainerRequest(
            container_id=c.id, timeout=1), container=c)
        if out.result == OK:
            c.state = STOPPED
        elif out.result == UNKNOWN:
            c.pending = "stop"

    def _remove(self, c: ContainerFact) -> None:
        out = self._call("RemoveContainer", api_pb2.RemoveContainerRequest(container_id=c.id),
                         container=c)
        if out.result == OK:
            self.ledger.containers.remove(c)
        elif out.result == UNKNOWN:
            c.pending = "remove"

    def _stop_remove_pod(self, pod: PodFact) -> None:
        out = self._call("StopPodSandbox", api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod.id))
        if out.result == UNKNOWN:
            self.ledger.pod_pending(pod, "stop")
            return
        if out.result == OK:
            self.ledger.pod_stopped(pod)
        out = self._call("RemovePodSandbox",
                         api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod.id))
        if out.result == OK:
            self.ledger.drop_pod(pod)
        elif out.result == UNKNOWN:
            self.ledger.pod_pending(pod, "remove")

    def _pull(self) -> None:
        self._call("PullImage", api_pb2.PullImageRequest(
            image=api_pb2.ImageSpec(image=self.image)))

    def _stats(self) -> None:
        self._call("ListContainerStats", api_pb2.ListContainerStatsRequest())
        self._call("ListPodSandboxStats", api_pb2.ListPodSandboxStatsRequest())

    def _list(self) -> None:
        self._call("ListPodSandbox", api_pb2.ListPodSandboxRequest())
        self._call("ListContainers", api_pb2.ListContainersRequest())
