"""One connected NRI plugin: its mux, ttrpc client and server, and the handshake.

The handshake is NRI's: the plugin calls ``Runtime.RegisterPlugin`` (name
and two-digit index) within the registration timeout, crid calls
``Plugin.Configure`` and learns which events the plugin wants; then the
adaptation synchronizes it. Every call crid makes has the request timeout;
a plugin that lets one run out, breaks the framing or hangs up is closed
(``closed`` is set) and is dropped from the adaptation; the CRI call that
was waiting on it goes on as if it had no plugin (as containerd does).
An error the plugin *returns* is different: it fails that CRI call.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Awaitable, Callable

from google.protobuf.message import Message

from crid import logs
from crid.api import nri_pb2
from crid.nri import ttrpc
from crid.nri.multiplex import PLUGIN_SERVICE_CONN, RUNTIME_SERVICE_CONN, Mux

log = logs.get("crid.nri")

PACKAGE = "nri.pkg.api.v1alpha1"
PLUGIN_SERVICE, RUNTIME_SERVICE = f"{PACKAGE}.Plugin", f"{PACKAGE}.Runtime"
NRI_VERSION = "v0.12.1"
# Every event a plugin can subscribe to (NRI's ValidEvents): bits 0..13.
VALID_EVENTS = (1 << (nri_pb2.LAST - 1)) - 1
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_INDEX = re.compile(r"^[0-9]{2}$")

UpdateHandler = Callable[["Plugin", nri_pb2.UpdateContainersRequest],
                         Awaitable[nri_pb2.UpdateContainersResponse]]


def event_bit(event: int) -> int:
    return 1 << (event - 1)


class PluginClosed(Exception):
    """The plugin went away (or was cut off) while crid waited on it."""


class Plugin:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 request_timeout: float, on_update: UpdateHandler) -> None:
        self.name = ""
        self.index = ""
        self.events = 0
        self.request_timeout = request_timeout
        self.registered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed = asyncio.Event()
        # Set once Synchronize is done: events for the plugin wait for it.
        self.synced = asyncio.Event()
        self._legacy: set[str] = set()  # methods it lacks: sent as StateChange instead
        self._on_update = on_update
        self._mux = Mux(reader, writer)
        send_plugin = self._sender(PLUGIN_SERVICE_CONN)
        self._client = ttrpc.Client(self._mux.open(PLUGIN_SERVICE_CONN), send_plugin)
        self._server = ttrpc.Server(self._mux.open(RUNTIME_SERVICE_CONN),
                                    self._sender(RUNTIME_SERVICE_CONN), {
                                        (RUNTIME_SERVICE, "RegisterPlugin"): self._register,
                                        (RUNTIME_SERVICE, "UpdateContainers"): self._update,
                                    })
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def label(self) -> str:
        return f"{self.index}-{self.name}" if self.name else "unregistered plugin"

    def sort_key(self) -> tuple[str, str]:
        return self.index, self.name

    def wants(self, event: int) -> bool:
        return bool(self.events & event_bit(event))

    def _sender(self, conn_id: int) -> ttrpc.Send:
        async def send(data: bytes) -> None:
            try:
                await self._mux.send(conn_id, data)
            except (ConnectionError, RuntimeError) as exc:
                self.close(f"write failed: {exc}")
                raise ttrpc.RpcError(ttrpc.UNAVAILABLE, f"plugin {self.label} is gone") from exc
        return send

    def start(self) -> None:
        for name, part in (("mux", self._mux.run()), ("client", self._client.run()),
                           ("server", self._server.run())):
            self._tasks.append(asyncio.create_task(self._guard(name, part)))

    async def _guard(self, part: str, running: Awaitable[None]) -> None:
        try:
            await running
            self.close("connection closed")
        except (asyncio.IncompleteReadError, ConnectionError):
            self.close("connection closed")
        except ttrpc.ProtocolError as exc:
            self.close(f"protocol error in {part}: {exc}")

    def close(self, why: str) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        log.info("nri plugin disconnected", plugin=self.label, reason=why)
        self._client.close(why)
        self._mux.close()
        if not self.registered.done():
            self.registered.set_exception(PluginClosed(why))
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()

    # --- the Runtime service, served to the plugin ---------------------------

    async def _register(self, payload: bytes) -> bytes:
        request = nri_pb2.RegisterPluginRequest.FromString(payload)
        if not _NAME.match(request.plugin_name):
            raise ttrpc.RpcError(ttrpc.INVALID_ARGUMENT,
                                 f"invalid plugin name {request.plugin_name!r}")
        if not _INDEX.match(request.plugin_idx):
            raise ttrpc.RpcError(ttrpc.INVALID_ARGUMENT,
                                 f"invalid plugin index {request.plugin_idx!r} (two digits)")
        if self.registered.done():
            raise ttrpc.RpcError(ttrpc.INVALID_ARGUMENT, "plugin already registered")
        self.name, self.index = request.plugin_name, request.plugin_idx
        log.info("nri plugin registered", plugin=self.label,
                 nri_version=request.NRI_version or "unknown")
        self.registered.set_result(None)
        return nri_pb2.Empty().SerializeToString()

    async def _update(self, payload: bytes) -> bytes:
        if not self.synced.is_set():
            raise ttrpc.RpcError(ttrpc.UNAVAILABLE, "plugin is not synchronized yet")
        request = nri_pb2.UpdateContainersRequest.FromString(payload)
        return (await self._on_update(self, request)).SerializeToString()

    # --- the Plugin service, called on the plugin -----------------------------

    async def call(self, method: str, request: Message, reply: type[Message],
                   timeout: float | None = None) -> Message:
        """Call ``Plugin.method``; RpcError when the plugin returned an error, PluginClosed
        (and the plugin is closed) when it timed out or went away."""
        if self.closed.is_set():
            raise PluginClosed(f"plugin {self.label} is disconnected")
        try:
            payload = await self._client.call(PLUGIN_SERVICE, method,
                                              request.SerializeToString(),
                                              timeout or self.request_timeout)
        except ttrpc.RpcError as exc:
            if exc.code in (ttrpc.DEADLINE_EXCEEDED, ttrpc.UNAVAILABLE):
                self.close(f"{method}: {exc.message}")
                raise PluginClosed(f"plugin {self.label}: {exc.message}") from exc
            raise
        try:
            return reply.FromString(payload)
        except Exception as exc:
            self.close(f"{method}: undecodable reply")
            raise PluginClosed(f"plugin {self.label} sent an undecodable reply") from exc

    async def configure(self, runtime_version: str, config: str,
                        registration_timeout: float) -> None:
        reply = await self.call("Configure", nri_pb2.ConfigureRequest(
            config=config, runtime_name="crid", runtime_version=runtime_version,
            registration_timeout=int(registration_timeout * 1000),
            request_timeout=int(self.request_timeout * 1000), NRI_version=NRI_VERSION,
        ), nri_pb2.ConfigureResponse)
        assert isinstance(reply, nri_pb2.ConfigureResponse)
        events = reply.events or VALID_EVENTS
        if events & ~VALID_EVENTS:
            raise ttrpc.RpcError(ttrpc.INVALID_ARGUMENT,
                                 f"plugin {self.label} asked for unknown events 0x{events:x}")
        self.events = events

    async def event(self, method: str, event: int, request: Message, reply: type[Message],
                    pod: nri_pb2.PodSandbox, container: nri_pb2.Container | None) -> None:
        """An event with its own method in NRI 0.12, sent as StateChange to older plugins."""
        if method not in self._legacy:
            try:
                await self.call(method, request, reply)
                return
            except ttrpc.RpcError as exc:
                if exc.code != ttrpc.UNIMPLEMENTED:
                    raise
                self._legacy.add(method)
        change = nri_pb2.StateChangeEvent(event=event, pod=pod)  # type: ignore[arg-type]
        if container is not None:
            change.container.CopyFrom(container)
        await self.call("StateChange", change, nri_pb2.Empty)

    async def shutdown(self) -> None:
        with contextlib.suppress(ttrpc.RpcError, PluginClosed):
            await self.call("Shutdown", nri_pb2.Empty(), nri_pb2.Empty, timeout=1.0)
        self.close("shut down")
