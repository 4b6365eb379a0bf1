"""What one worker believes exists, from the answers crid gave it.

A call that returned success is a fact the daemon must keep through any kill;
a call that failed must have left nothing; a call cut off by a kill (its
outcome unknown) is ``pending`` until the next check, which settles it from
what the daemon lists: either the whole thing happened or none of it.
"""

from __future__ import annotations

import dataclasses

from cri_api.v1 import api_pb2

READY, STOPPED = "ready", "stopped"
CREATED, STARTED = "created", "started"  # containers; STOPPED too


@dataclasses.dataclass
class PodFact:
    name: str
    config: api_pb2.PodSandboxConfig
    id: str = ""
    state: str = READY
    pending: str = ""  # "run", "stop" or "remove": sent, no answer


@dataclasses.dataclass
class ContainerFact:
    name: str
    pod: PodFact
    exits: bool  # its command exits on its own (code EXIT_CODE)
    id: str = ""
    state: str = CREATED
    pending: str = ""  # "create", "start", "stop" or "remove": sent, no answer
    conmon_killed: bool = False


EXIT_CODE = 3
_SETTLED: dict[int, str] = {api_pb2.CONTAINER_CREATED: CREATED, api_pb2.CONTAINER_RUNNING: STARTED,
            api_pb2.CONTAINER_EXITED: STOPPED}
Listing = tuple[dict[str, api_pb2.PodSandbox], dict[str, api_pb2.Container]]


class Ledger:
    """One worker's pods and containers, and the creates it was refused."""

    def __init__(self, worker: int) -> None:
        self.worker = worker
        self.pods: list[PodFact] = []
        self.containers: list[ContainerFact] = []
        # (pod name, container name or ""): a create the daemon refused; it must not be listed.
        self.refused: list[tuple[str, str]] = []

    def drop_pod(self, pod: PodFact) -> None:
        self.pods.remove(pod)
        self.containers = [c for c in self.containers if c.pod is not pod]

    def pod_stopped(self, pod: PodFact) -> None:
        pod.state = STOPPED
        for c in self.containers:
            if c.pod is pod and c.state != CREATED:
                c.state = STOPPED
            elif c.pod is pod:
                c.pending = c.pending or "stop"  # a created one may stay created

    def pod_pending(self, pod: PodFact, call: str) -> None:
        """A stop or remove of ``pod`` was cut off: its containers may have gone with it."""
        pod.pending = call
        for c in self.containers:
            if c.pod is pod:  # a remove may have taken them, whatever was pending
                c.pending = call if call == "remove" else c.pending or call

    # --- settling and checking, while the worker is parked ---------------------

    def settle(self, listing: Listing) -> None:
        """Pending outcomes take what the daemon lists; a half-done call must not show."""
        pods, containers = listing
        by_pod_name = {p.metadata.name: p for p in pods.values()}
        for pod in list(self.pods):
            found = pods.get(pod.id) if pod.id else by_pod_name.get(pod.name)
            if pod.pending == "run":
                if found is None:
                    self.drop_pod(pod)
                    continue
                pod.id, pod.state = found.id, READY if found.state == api_pb2.SANDBOX_READY \
                    else STOPPED
            elif pod.pending == "remove" and found is None:
                self.drop_pod(pod)
                continue
            elif pod.pending and found is not None:  # a stop, or a remove not done
                pod.state = STOPPED if found.state == api_pb2.SANDBOX_NOTREADY else pod.state
            pod.pending = ""
        by_name = {(c.pod_sandbox_id, c.metadata.name): c for c in containers.values()}
        for c in list(self.containers):
            listed = containers.get(c.id) if c.id else by_name.get((c.pod.id, c.name))
            if c.pending == "create":
                if listed is None:
                    self.containers.remove(c)
                    continue
                c.id = listed.id
                c.state = CREATED if listed.state == api_pb2.CONTAINER_CREATED else STARTED
            elif c.pending == "remove" and listed is None:
                self.containers.remove(c)
                continue
            elif c.pending and listed is not None:  # start, stop, or a remove not done
                c.state = _SETTLED.get(listed.state, c.state)
            c.pending = ""

    def check(self, listing: Listing, exit_codes: dict[str, tuple[int, int]]) -> list[str]:
        """What the daemon lists against what it answered; ``exit_codes`` maps the ids
        of exited containers to (exit code, finished_at)."""
        pods, containers = listing
        problems = []
        me = f"worker {self.worker}"
        for pod in self.pods:
            found = pods.get(pod.id)
            if found is None:
                problems.append(f"{me}: pod {pod.name} {pod.id} ({pod.state}) is not listed")
                continue
            want = api_pb2.SANDBOX_READY if pod.state == READY else api_pb2.SANDBOX_NOTREADY
            if found.state != want:
                problems.append(f"{me}: pod {pod.name} {pod.id} is {found.state}, "
                                f"it was {pod.state}")
        for c in self.containers:
            found_c = containers.get(c.id)
            what = f"{me}: container {c.pod.name}/{c.name} {c.id} ({c.state}"
            what += ", conmon killed)" if c.conmon_killed else ")"
            if found_c is None:
                problems.append(f"{what} is not listed")
                continue
            problems.extend(_state_problems(what, c, found_c.state, exit_codes.get(c.id)))
        for pod_name, name in self.refused:
            if not name and any(p.metadata.name == pod_name for p in pods.values()):
                problems.append(f"{me}: pod {pod_name}, whose run failed, is listed")
            if name and any(c.metadata.name == name and pods.get(c.pod_sandbox_id) is not None
                            and pods[c.pod_sandbox_id].metadata.name == pod_name
                            for c in containers.values()):
                problems.append(f"{me}: container {pod_name}/{name}, whose create failed, "
                                "is listed")
        self.refused.clear()
        return problems

    def claims(self) -> tuple[set[str], set[str]]:
        return {p.id for p in self.pods}, {c.id for c in self.containers}


def _state_problems(what: str, c: ContainerFact, state: api_pb2.ContainerState.ValueType,
                    exited: tuple[int, int] | None) -> list[str]:
    name = api_pb2.ContainerState.Name(state)
    if c.conmon_killed:
        # Its monitor is gone: any state, as long as it is listed and can be removed;
        # once stopped, it is stopped.
        if c.state == STOPPED and state != api_pb2.CONTAINER_EXITED:
            return [f"{what} is {name} after a stop that succeeded"]
        return []
    if c.state == CREATED and state != api_pb2.CONTAINER_CREATED:
        return [f"{what} is {name}; nothing started it"]
    if c.state == STOPPED and state != api_pb2.CONTAINER_EXITED:
        return [f"{what} is {name} after a stop that succeeded"]
    if c.state == STARTED:
        if state == api_pb2.CONTAINER_RUNNING:
            return []
        if state != api_pb2.CONTAINER_EXITED or not c.exits:
            return [f"{what} is {name}; it should still run"]
        code, finished = exited or (-1, 0)
        if code != EXIT_CODE or not finished:
            return [f"{what} exited with {code} (finished at {finished}), not {EXIT_CODE}"]
    return []
