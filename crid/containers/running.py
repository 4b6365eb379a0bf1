"""The precondition of the calls that act on a live container (ExecSync, Exec,
Attach, ReopenContainerLog): it must be running, or the call fails FAILED_PRECONDITION."""

from __future__ import annotations

from crid.containers.context import Containers
from crid.containers.records import RUNNING, Container
from crid.errors import FailedPrecondition


def require_running(ctx: Containers, container_id: str, call: str) -> Container:
    container = ctx.require(container_id)
    if container.state != RUNNING:
        raise FailedPrecondition(
            f"{call}: container {container.id} is {container.state}, not running")
    return container
