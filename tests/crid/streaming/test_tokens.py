"""The token cache: random, single use, expiring after a minute."""

from __future__ import annotations

import pytest

from crid.clock import Clock
from crid.errors import InvalidArgument, ResourceExhausted
from crid.streaming import tokens
from crid.streaming.tokens import AttachRequest, ExecRequest, PortForwardRequest, TokenCache


class FakeClock(Clock):
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def test_a_token_works_once() -> None:
    cache = TokenCache(FakeClock())
    request = ExecRequest("c", ("ls",))
    token = cache.put(request)
    assert cache.take("exec", token) == request
    assert cache.take("exec", token) is None


def test_tokens_expire_after_a_minute() -> None:
    clock = FakeClock()
    cache = TokenCache(clock)
    early, late = cache.put(AttachRequest("c")), None
    clock.now += 30
    late = cache.put(AttachRequest("d"))
    clock.now += 29.9
    assert len(cache) == 2
    clock.now += 0.1  # early is 60 s old
    assert cache.take("attach", early) is None
    assert cache.take("attach", late) == AttachRequest("d")


def test_a_token_is_only_good_for_its_kind() -> None:
    cache = TokenCache(FakeClock())
    token = cache.put(PortForwardRequest("pod", (80,)))
    assert cache.take("exec", token) is None
    assert cache.take("portforward", token) == PortForwardRequest("pod", (80,))


def test_tokens_are_long_random_and_url_safe() -> None:
    cache = TokenCache(FakeClock())
    made = {cache.put(ExecRequest("c", ("true",))) for _ in range(1000)}
    assert len(made) == 1000
    for token in made:
        assert len(token) * 6 >= 128
        assert token.replace("-", "").replace("_", "").isalnum()


def test_pending_requests_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens, "MAX_PENDING", 3)
    cache = TokenCache(FakeClock())
    for _ in range(3):
        cache.put(ExecRequest("c", ("true",)))
    with pytest.raises(ResourceExhausted):
        cache.put(ExecRequest("c", ("true",)))


def test_url_shape() -> None:
    request = ExecRequest("c", ("true",))
    assert tokens.url("http://127.0.0.1:1234/", request, "TOK") == (
        "http://127.0.0.1:1234/exec/TOK")
    assert tokens.url("http://[::1]:1", PortForwardRequest("p"), "T") == (
        "http://[::1]:1/portforward/T")


@pytest.mark.parametrize("request_, problem", [
    (ExecRequest("c", ("sh",), tty=True, stderr=True), "tty and stderr"),
    (ExecRequest("c", ("sh",), stdout=False, stderr=False), "one of stdin"),
    (ExecRequest("c", ()), "cmd is required"),
    (ExecRequest("", ("sh",)), "container_id"),
    (AttachRequest("c", tty=True), "tty and stderr"),
    (PortForwardRequest("", (80,)), "pod_sandbox_id"),
    (PortForwardRequest("p", (0,)), "1-65535"),
])
def test_requests_no_session_could_serve_are_refused(request_: tokens.Request,
                                                     problem: str) -> None:
    with pytest.raises(InvalidArgument, match=problem):
        TokenCache(FakeClock()).put(request_)
