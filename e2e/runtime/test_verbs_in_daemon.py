"""crid-runtime's verbs run in-process (as the daemon runs them for the ``crid``
handler, ``crid.containers.runtime_in_process``) against the same verbs run
as ``crid-runtime`` commands (``RuntimeCommand``, what every other handler
gets): the same results, the same ``RuntimeFailed`` words and the same
state files, on real containers; and the two mixed on one container, since
the state on disk is the one truth.

Twin containers (one bundle, a cgroup each) go through the same steps, one
by command and one in-process; after each step the outcome and the state
file (its id, pid, times and cgroup name made neutral) must agree.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from crid.oci import launcher
from crid.oci.runtime_spec import Resources

import crid
from crid.config import Handler
from crid.containers import runtime_in_process
from crid.containers.monitor import RuntimeCommand, RuntimeFailed, RuntimeVerbs
from crid.containers.runtime_in_process import InProcessVerbs
from e2e.fixtures.bundle import RUNTIMES, Bundle, Runtime, _remove_cgroups
from e2e.runtime.helpers import cgroup_file, wait_status

CRID = Handler("crid", RUNTIMES["crid-runtime"])
SLEEPER = ["sleep", "1000"]
RESOURCES: Resources = {"memory": {"limit": 64 << 20}, "pids": {"limit": 50},
                        "cpu": {"shares": 512}}


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Runtime]:
    rt = Runtime("crid-runtime", tmp_path / "root")
    yield rt
    rt.cleanup()


@pytest.fixture
def twins(bundle: Bundle) -> Iterator[list[str]]:
    """Cgroup names for two containers of one bundle; removed after."""
    names = [f"{bundle.cgroup_name}-{n}" for n in ("cmd", "in")]
    yield names
    for name in names:
        _remove_cgroups(name)


def create(cli: Runtime, bundle: Bundle, cgroup: str, args: list[str] | None = None) -> str:
    bundle.config["linux"]["cgroupsPath"] = "/" + cgroup
    bundle.write(args or SLEEPER)
    return cli.create(bundle)


Outcome = tuple[str, Any]


def outcome(call: Awaitable[Any]) -> Outcome:
    async def run() -> Any:
        return await call
    try:
        return ("ok", asyncio.run(run()))
    except RuntimeFailed as exc:
        return ("failed", exc.message)


def neutral(root: Path, cid: str, cgroup: str) -> Any:
    """The container's state dir as the runtime left it, with what differs
    between twins by nature (id, pids, times, cgroup name) made neutral."""
    d = root / cid
    if not d.exists():
        return None
    text = (d / "state.json").read_text().replace(cid, "CID").replace(cgroup, "CGROUP")
    state = json.loads(text)
    for key in ("pid", "pid_start", "created"):
        state.pop(key, None)
    return sorted(os.listdir(d)), state


def same(a: Outcome, b: Outcome, cids: tuple[str, str]) -> None:
    """The same outcome, but for the ids and a state's creation time."""
    def scrub(o: Outcome, cid: str) -> Any:
        kind, value = json.loads(json.dumps(o).replace(cid, "CID"))
        if isinstance(value, dict):
            value.pop("created", None)
        return kind, value
    assert scrub(a, cids[0]) == scrub(b, cids[1])


def test_twins_agree_on_every_verb(cli: Runtime, bundle: Bundle, twins: list[str]) -> None:
    command = RuntimeCommand(CRID, cli.root)
    in_process = InProcessVerbs(CRID, cli.root)
    verbs: tuple[RuntimeVerbs, RuntimeVerbs] = (command, in_process)
    cids = (create(cli, bundle, twins[0]), create(cli, bundle, twins[1]))

    def step(name: str, do: Callable[[RuntimeVerbs, str], Awaitable[Any]]) -> Outcome:
        got = [outcome(do(v, cid)) for v, cid in zip(verbs, cids, strict=True)]
        same(got[0], got[1], cids)
        files = [neutral(cli.root, cid, cg) for cid, cg in zip(cids, twins, strict=True)]
        assert files[0] == files[1], name
        return got[1]

    def state(v: RuntimeVerbs, cid: str) -> Awaitable[Any]:
        return v.state(cid)

    async def status(v: RuntimeVerbs, cid: str) -> str:
        return str((await v.state(cid))["status"])

    def ps(v: RuntimeVerbs, cid: str) -> Awaitable[Any]:
        return v.ps(cid)

    async def ps_count(v: RuntimeVerbs, cid: str) -> int:
        return len(await v.ps(cid))

    assert step("state", status) == ("ok", "created")
    assert step("ps", ps_count) == ("ok", 1)
    assert step("start", lambda v, c: v.start(c)) == ("ok", None)
    assert step("start again", lambda v, c: v.start(c))[0] == "failed"
    assert step("state", status) == ("ok", "running")
    assert step("update", lambda v, c: v.update(c, RESOURCES, bundle.path)) == ("ok", None)
    for cg in twins:
        assert cgroup_file_of(cg, "pids", "pids.max") == "50"
        assert cgroup_file_of(cg, "memory", "memory.limit_in_bytes") == str(64 << 20)
    assert step("pause", lambda v, c: v.pause(c)) == ("ok", None)
    assert step("state", status) == ("ok", "paused")
    assert step("pause again", lambda v, c: v.pause(c)) == (
        "failed", _words("pause", "container not running"))
    assert step("resume", lambda v, c: v.resume(c)) == ("ok", None)
    assert step("resume again", lambda v, c: v.resume(c)) == (
        "failed", _words("resume", "container not paused"))
    assert step("delete running", lambda v, c: v.delete(c))[0] == "failed"
    assert step("kill 0", lambda v, c: v.kill(c, 0)) == ("ok", None)
    assert step("kill --all", lambda v, c: v.kill(c, signal.SIGKILL, all_processes=True)) == \
        ("ok", None)
    for cid in cids:
        wait_status(cli, cid, "stopped")
    stopped = step("state", state)
    assert stopped[0] == "ok" and stopped[1]["status"] == "stopped" and stopped[1]["pid"] == 0
    assert step("ps stopped", ps) == ("ok", [])
    assert step("kill stopped", lambda v, c: v.kill(c, signal.SIGTERM)) == (
        "failed", _words("kill", "container not running"))
    assert step("update stopped", lambda v, c: v.update(c, RESOURCES, bundle.path)) == (
        "failed", _words("update", "container not running"))
    assert step("pause stopped", lambda v, c: v.pause(c))[0] == "failed"
    assert step("delete", lambda v, c: v.delete(c)) == ("ok", None)
    gone = _words("state", "container does not exist")
    assert step("state gone", state) == ("failed", gone)
    assert step("delete gone", lambda v, c: v.delete(c))[0] == "failed"
    assert step("delete --force gone", lambda v, c: v.delete(c, force=True)) == ("ok", None)


def test_twins_agree_on_force_delete(cli: Runtime, bundle: Bundle, twins: list[str]) -> None:
    """delete --force of a running container (it is killed first) and of a
    created one, and kill --all of a paused one (thawed to die)."""
    verbs: tuple[RuntimeVerbs, RuntimeVerbs] = (RuntimeCommand(CRID, cli.root),
                                                InProcessVerbs(CRID, cli.root))
    for prepare in ("running", "created", "paused"):
        cids = (create(cli, bundle, twins[0]), create(cli, bundle, twins[1]))
        pids = [cli.state(cid)["pid"] for cid in cids]
        if prepare != "created":
            for cid in cids:
                cli("start", cid, check=True)
        if prepare == "paused":
            for cid in cids:
                cli("pause", cid, check=True)
            got = [outcome(v.kill(cid, signal.SIGKILL, all_processes=True))
                   for v, cid in zip(verbs, cids, strict=True)]
            assert got == [("ok", None), ("ok", None)]
        got = [outcome(v.delete(cid, force=True)) for v, cid in zip(verbs, cids, strict=True)]
        assert got == [("ok", None), ("ok", None)], prepare
        for cid, cg, pid in zip(cids, twins, pids, strict=True):
            assert not (cli.root / cid).exists()
            assert not Path(f"/sys/fs/cgroup/pids/{cg}").exists()
            status = Path(f"/proc/{pid}/status")
            assert not status.exists() or "zombie" in status.read_text()


@pytest.mark.parametrize("cid", ["no-such-container", "../escape", ""])
def test_unknown_and_bad_ids_fail_alike(cli: Runtime, cid: str) -> None:
    command, in_process = RuntimeCommand(CRID, cli.root), InProcessVerbs(CRID, cli.root)
    calls: list[Callable[[RuntimeVerbs], Awaitable[Any]]] = [
        lambda v: v.start(cid), lambda v: v.kill(cid, 9),
        lambda v: v.kill(cid, 9, all_processes=True), lambda v: v.state(cid),
        lambda v: v.delete(cid), lambda v: v.delete(cid, force=True),
        lambda v: v.update(cid, RESOURCES, cli.root), lambda v: v.pause(cid),
        lambda v: v.resume(cid), lambda v: v.ps(cid)]
    cli.root.mkdir(exist_ok=True)
    for call in calls:
        assert outcome(call(command)) == outcome(call(in_process))


def test_cli_and_daemon_mixed_on_one_container(cli: Runtime, bundle: Bundle) -> None:
    """Created by the CLI, started in-process, read by the CLI, paused by the
    CLI and resumed in-process, updated in-process and read back by the CLI,
    killed by the CLI and deleted in-process: the state file carries it all."""
    verbs = InProcessVerbs(CRID, cli.root)
    bundle.write(SLEEPER)
    cid = cli.create(bundle)
    assert asyncio.run(verbs.state(cid)) == cli.state(cid)
    asyncio.run(verbs.start(cid))
    assert cli.state(cid)["status"] == "running"
    assert json.loads(cli("ps", "--format", "json", cid, check=True).stdout) == \
        asyncio.run(verbs.ps(cid)) == [cli.state(cid)["pid"]]
    cli("pause", cid, check=True)
    assert asyncio.run(verbs.state(cid))["status"] == "paused"
    asyncio.run(verbs.resume(cid))
    assert cli.state(cid)["status"] == "running"
    asyncio.run(verbs.update(cid, {"pids": {"limit": 40}}, bundle.path))
    assert cgroup_file(bundle, "pids", "pids.max") == "40"
    cli("update", "--pids-limit", "30", cid, check=True)
    saved = json.loads((cli.root / cid / "state.json").read_text())
    assert saved["config"]["linux"]["resources"]["pids"] == {"limit": 30}
    assert asyncio.run(verbs.state(cid)) == cli.state(cid)
    cli("kill", cid, "KILL", check=True)
    wait_status(cli, cid, "stopped")
    asyncio.run(verbs.delete(cid))
    r = cli("state", cid)
    assert r.returncode != 0 and "container does not exist" in r.stderr


def test_in_process_delete_reaps_nothing_of_the_callers(cli: Runtime, bundle: Bundle) -> None:
    """The CLI's ``run`` reaps what its delete kills; in the daemon that would
    steal exit statuses asyncio's child watcher waits for."""
    bundle.write(SLEEPER)
    cid = cli.create(bundle)
    cli("start", cid, check=True)
    child = subprocess.Popen(["sh", "-c", "exit 7"])
    deadline = time.monotonic() + 5
    while "zombie" not in Path(f"/proc/{child.pid}/status").read_text():
        assert time.monotonic() < deadline
        time.sleep(0.01)
    asyncio.run(InProcessVerbs(CRID, cli.root).delete(cid, force=True))  # kills, then waits
    assert child.wait(5) == 7


def test_in_process_start_gives_up_at_its_deadline(
        cli: Runtime, bundle: Bundle, monkeypatch: pytest.MonkeyPatch) -> None:
    """An init that neither exits nor takes the start (stopped here) would hold
    a CLI ``start`` for ever; in the daemon the call ends at its deadline, and
    so does the thread."""
    monkeypatch.setattr(runtime_in_process, "RUNTIME_TIMEOUT", 1.0)
    bundle.write(SLEEPER)
    cid = cli.create(bundle)
    pid = cli.state(cid)["pid"]
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(RuntimeFailed, match="crid runtime start timed out"):
            asyncio.run(InProcessVerbs(CRID, cli.root).start(cid))
        assert time.monotonic() - started < 3
    finally:
        os.kill(pid, signal.SIGCONT)


def test_the_crid_handler_runs_in_process_and_others_as_commands(tmp_path: Path) -> None:
    """In-process only where the runtime runs the daemon's own code: this
    install's crid-runtime, or a launcher of the same crid tree."""
    def chosen(path: str | Path) -> type:
        return type(runtime_in_process.choose(Handler("h", str(path)), tmp_path))

    assert chosen(RUNTIMES["crid-runtime"]) is InProcessVerbs
    assert chosen(RUNTIMES["runc"]) is RuntimeCommand
    tree = os.path.dirname(os.path.dirname(crid.__file__))
    for name, text, how in (
            ("same-tree", launcher.script("/usr/bin/python3", tree), InProcessVerbs),
            ("other-tree", launcher.script(sys.executable, str(tmp_path)), RuntimeCommand),
            ("wrapper", launcher.script(sys.executable, tree) + "# changed\n", RuntimeCommand)):
        (tmp_path / name).write_text(text)
        (tmp_path / name).chmod(0o755)
        assert chosen(tmp_path / name) is how, name
    assert chosen(tmp_path / "missing") is RuntimeCommand


def cgroup_file_of(cgroup: str, controller: str, name: str) -> str:
    return Path(f"/sys/fs/cgroup/{controller}/{cgroup}/{name}").read_text().strip()


def _words(verb: str, said: str) -> str:
    return f"crid runtime {verb} failed: crid-runtime: {said}"
