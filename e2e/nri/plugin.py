"""NRI plugins for tests, in Python over crid's own ttrpc and mux code.

``ScriptedPlugin`` connects to a daemon's NRI socket from a thread of its own
(the tests are synchronous), registers, and answers the Plugin service the
way its knobs say: record every call, adjust created containers, fail or
hang on chosen methods, or break the framing after registering.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from crid.api import nri_pb2
from google.protobuf.message import Message

from crid.nri import multiplex, ttrpc
from crid.nri.plugin import PLUGIN_SERVICE, RUNTIME_SERVICE

Adjust = Callable[[nri_pb2.PodSandbox, nri_pb2.Container], nri_pb2.ContainerAdjustment]

# Methods with a (pod, container?) request and an empty reply.
_EVENTS: dict[str, tuple[type[Message], type[Message]]] = {
    "RunPodSandbox": (nri_pb2.RunPodSandboxRequest, nri_pb2.RunPodSandboxResponse),
    "StopPodSandbox": (nri_pb2.StopPodSandboxRequest, nri_pb2.StopPodSandboxResponse),
    "RemovePodSandbox": (nri_pb2.RemovePodSandboxRequest, nri_pb2.RemovePodSandboxResponse),
    "PostCreateContainer": (nri_pb2.PostCreateContainerRequest,
                            nri_pb2.PostCreateContainerResponse),
    "StartContainer": (nri_pb2.StartContainerRequest, nri_pb2.StartContainerResponse),
    "PostStartContainer": (nri_pb2.PostStartContainerRequest,
                           nri_pb2.PostStartContainerResponse),
    "StopContainer": (nri_pb2.StopContainerRequest, nri_pb2.StopContainerResponse),
    "RemoveContainer": (nri_pb2.RemoveContainerRequest, nri_pb2.RemoveContainerResponse),
    "PostUpdateContainer": (nri_pb2.PostUpdateContainerRequest,
                            nri_pb2.PostUpdateContainerResponse),
    "UpdatePodSandbox": (nri_pb2.UpdatePodSandboxRequest, nri_pb2.UpdatePodSandboxResponse),
    "PostUpdatePodSandbox": (nri_pb2.PostUpdatePodSandboxRequest,
                             nri_pb2.PostUpdatePodSandboxResponse),
}
Amend = Callable[[nri_pb2.UpdateContainerRequest], list[nri_pb2.ContainerUpdate]]


@dataclass
class ScriptedPlugin:
    socket_path: str
    name: str
    index: str = "00"
    adjust: Adjust | None = None
    amend: Amend | None = None  # UpdateContainer's answer
    fail: set[str] = field(default_factory=set)  # methods answered with an error
    hang: set[str] = field(default_factory=set)  # methods never answered
    garbage: bool = False  # send a frame that breaks the mux after registering
    sock: socket.socket | None = None  # pre-connected (NRI_PLUGIN_SOCKET), not socket_path
    config: str = ""  # what Configure said
    legacy: bool = False  # an older plugin: events only through StateChange
    calls: list[tuple[str, str, str]] = field(default_factory=list)  # method, pod, container
    synced: threading.Event = field(default_factory=threading.Event)
    closed: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=f"nri-{self.name}", daemon=True)
        self._writer: asyncio.StreamWriter | None = None
        self._client: ttrpc.Client | None = None

    def start(self, wait_synced: bool = True, timeout: float = 10) -> ScriptedPlugin:
        self._thread.start()
        if wait_synced:
            assert self.synced.wait(timeout), f"plugin {self.name} not synchronized: {self.error}"
        return self

    def wait(self) -> None:
        """Until the runtime hangs up (a pre-installed plugin's whole life)."""
        self._thread.join()

    def stop(self) -> None:
        if self._writer is not None:
            self._loop.call_soon_threadsafe(self._writer.close)
        self._thread.join(10)

    def methods(self) -> list[str]:
        return [method for method, _, _ in self.calls]

    def _run(self) -> None:
        try:
            self._loop.run_until_complete(self._main())
        except BaseException as exc:  # reported through .error and .closed
            self.error = exc
        finally:
            self.closed.set()

    async def _main(self) -> None:
        if self.sock is not None:
            reader, writer = await asyncio.open_unix_connection(sock=self.sock)
        else:
            reader, writer = await asyncio.open_unix_connection(self.socket_path)
        self._writer = writer
        mux = multiplex.Mux(reader, writer)
        handlers: dict[tuple[str, str], ttrpc.Handler] = {
            (PLUGIN_SERVICE, "Configure"): self._configure,
            (PLUGIN_SERVICE, "Synchronize"): self._synchronize,
            (PLUGIN_SERVICE, "CreateContainer"): self._create,
            (PLUGIN_SERVICE, "UpdateContainer"): self._update,
            (PLUGIN_SERVICE, "Shutdown"): self._empty("Shutdown"),
        }
        if self.legacy:
            handlers[(PLUGIN_SERVICE, "StateChange")] = self._state_change
        else:
            for method in _EVENTS:
                handlers[(PLUGIN_SERVICE, method)] = self._event(method)
        server = ttrpc.Server(mux.open(multiplex.PLUGIN_SERVICE_CONN),
                              lambda data: mux.send(multiplex.PLUGIN_SERVICE_CONN, data),
                              handlers)
        client = ttrpc.Client(mux.open(multiplex.RUNTIME_SERVICE_CONN),
                              lambda data: mux.send(multiplex.RUNTIME_SERVICE_CONN, data))
        self._client = client
        tasks = [asyncio.create_task(part) for part in (mux.run(), server.run(), client.run())]
        await client.call(RUNTIME_SERVICE, "RegisterPlugin", nri_pb2.RegisterPluginRequest(
            plugin_name=self.name, plugin_idx=self.index,
            NRI_version="v0.12.1").SerializeToString(), 5)
        if self.garbage:
            writer.write(b"\x00\x00\x00\x01\xff\xff\xff\xff" + b"garbage" * 10)
        with contextlib.suppress(Exception):
            await asyncio.gather(*tasks)

    async def _configure(self, payload: bytes) -> bytes:
        self.config = nri_pb2.ConfigureRequest.FromString(payload).config
        self.calls.append(("Configure", "", ""))
        return nri_pb2.ConfigureResponse(events=0).SerializeToString()

    async def _synchronize(self, payload: bytes) -> bytes:
        request = nri_pb2.SynchronizeRequest.FromString(payload)
        self.calls.append(("Synchronize", str(len(request.pods)), str(len(request.containers))))
        self.synced.set()
        return nri_pb2.SynchronizeResponse(more=request.more).SerializeToString()

    async def _behave(self, method: str) -> None:
        if method in self.hang:
            await asyncio.sleep(3600)
        if method in self.fail:
            raise RuntimeError(f"{self.name} refuses {method}")

    async def _create(self, payload: bytes) -> bytes:
        request = nri_pb2.CreateContainerRequest.FromString(payload)
        self.calls.append(("CreateContainer", request.pod.id, request.container.id))
        await self._behave("CreateContainer")
        reply = nri_pb2.CreateContainerResponse()
        if self.adjust is not None:
            reply.adjust.CopyFrom(self.adjust(request.pod, request.container))
        return reply.SerializeToString()

    async def _update(self, payload: bytes) -> bytes:
        request = nri_pb2.UpdateContainerRequest.FromString(payload)
        self.calls.append(("UpdateContainer", request.pod.id, request.container.id))
        await self._behave("UpdateContainer")
        updates = self.amend(request) if self.amend is not None else []
        return nri_pb2.UpdateContainerResponse(update=updates).SerializeToString()

    def _event(self, method: str) -> ttrpc.Handler:
        request_type, reply_type = _EVENTS[method]

        async def handle(payload: bytes) -> bytes:
            request = request_type.FromString(payload)
            pod = getattr(request, "pod")  # noqa: B009 - every event request has one
            container = getattr(request, "container", None)
            self.calls.append((method, pod.id, container.id if container is not None else ""))
            await self._behave(method)
            return reply_type().SerializeToString()
        return handle

    async def _state_change(self, payload: bytes) -> bytes:
        change = nri_pb2.StateChangeEvent.FromString(payload)
        self.calls.append((f"StateChange:{nri_pb2.Event.Name(change.event)}", change.pod.id,
                           change.container.id))
        return nri_pb2.Empty().SerializeToString()

    def update_containers(self, request: nri_pb2.UpdateContainersRequest
                          ) -> nri_pb2.UpdateContainersResponse:
        """Runtime.UpdateContainers, from the test's thread."""
        assert self._client is not None
        call = self._client.call(RUNTIME_SERVICE, "UpdateContainers",
                                 request.SerializeToString(), 30)
        payload = asyncio.run_coroutine_threadsafe(call, self._loop).result(35)
        return nri_pb2.UpdateContainersResponse.FromString(payload)

    def _empty(self, method: str) -> Callable[[bytes], Awaitable[bytes]]:
        async def handle(payload: bytes) -> bytes:
            self.calls.append((method, "", ""))
            return nri_pb2.Empty().SerializeToString()
        return handle
