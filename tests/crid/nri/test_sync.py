"""Synchronize split the way NRI splits it when the state passes ttrpc's limit."""

from __future__ import annotations

from crid.api import nri_pb2

from crid.nri.adaptation import sync_messages


def test_small_state_is_one_message() -> None:
    [only] = sync_messages([nri_pb2.PodSandbox(id="p")], [nri_pb2.Container(id="c")])
    assert not only.more
    assert [p.id for p in only.pods] == ["p"] and [c.id for c in only.containers] == ["c"]


def test_large_state_is_split_within_the_limit_and_keeps_everything() -> None:
    pods = [nri_pb2.PodSandbox(id=f"p{i}", annotations={"a": "x" * 1000}) for i in range(50)]
    containers = [nri_pb2.Container(id=f"c{i}", env=["E=" + "y" * 1000]) for i in range(80)]
    messages = sync_messages(pods, containers, limit=20_000)
    assert len(messages) > 5
    assert all(m.more for m in messages[:-1]) and not messages[-1].more
    assert all(m.ByteSize() <= 20_000 + 100 for m in messages)
    assert [p.id for m in messages for p in m.pods] == [p.id for p in pods]
    assert [c.id for m in messages for c in m.containers] == [c.id for c in containers]
