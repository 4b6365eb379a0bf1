"""Run a function on a fresh OS thread, for work that changes namespaces.

unshare and setns act on the calling thread. A pooled thread that entered a
pod's namespace would carry it into whatever it runs next, so such work gets
a thread of its own that ends when the function returns.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def call(fn: Callable[[], T], name: str = "crid-ns") -> T:
    """Run ``fn`` on a new thread and return its result (or raise its error)."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def body() -> None:
        try:
            outcome.append(fn())
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=body, name=name, daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return outcome[0]

