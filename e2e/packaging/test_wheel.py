"""The wheel works: built from the checkout, installed as an operator would, it runs a pod.

Owns the one check that crid runs from a real (non-editable) install: the
sdist and the wheel are built offline from the checkout as ``make dist``
builds them (``python -m build --no-isolation``: sdist first, the wheel from
the unpacked sdist, so nothing stale in ``build/lib`` can leak in and the
sdist is checked too), installed into a fresh venv from the locked wheels in
``build/wheels`` (no index), finished with ``python -P -m crid.oci.launcher``
as the README says, and then that venv's ``crid`` daemon runs one pod with one
container on a private pod network, its handler pointing at that venv's
``crid-runtime``. Every other e2e test runs the editable install; this one
catches what only a wheel can miss: a package or data file setup.cfg does not
list, an entry point, a dependency the lock lacks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from cri_api.v1 import api_pb2

import crid
from e2e.containers.helpers import create, exec_sync, log_texts, wait_state
from e2e.fixtures.daemon import CridDaemon
from e2e.fixtures.images import RunConfig, busybox_image, push
from e2e.fixtures.registry import Registry
from e2e.sandbox.pods import pod_config, pod_daemon, stop_remove

CHECKOUT = Path(__file__).resolve().parents[2]
WHEELS = CHECKOUT / "build" / "wheels"
RUNTIME_LOCK = CHECKOUT / "requirements.txt"
# Source folder -> where its files land in the wheel (setup.cfg's package_dir).
SOURCE_FOLDERS = {"crid": "crid", "api": "crid/api", "oci": "crid/oci",
                  "image": "crid/image", "network": "crid/network"}
# What a package carries besides code (setup.cfg's package_data).
PACKAGE_DATA = ("py.typed", "*.proto")
STEP_TIMEOUT = 300


@dataclass(frozen=True)
class Installed:
    """The built distributions and the venv the wheel went into."""

    wheel: Path
    sdist: Path
    venv: Path
    workdir: Path  # cwd for commands: never the checkout, whose crid/ would shadow

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def crid(self) -> Path:
        return self.venv / "bin" / "crid"

    @property
    def crid_runtime(self) -> Path:
        return self.venv / "bin" / "crid-runtime"

    def run(self, *argv: str | Path) -> str:
        return _run([str(a) for a in argv], cwd=self.workdir)


def _clean_env() -> dict[str, str]:
    """This environment without what would make the venv's Python look elsewhere."""
    drop = {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV"}
    return {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("PIP_")}


def _run(argv: Sequence[str | Path], cwd: Path) -> str:
    done = subprocess.run([str(a) for a in argv], cwd=cwd, env=_clean_env(),
                          capture_output=True, text=True, timeout=STEP_TIMEOUT, check=False)
    assert done.returncode == 0, (
        f"{' '.join(map(str, argv))} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    if not (WHEELS / ".fetched").exists():
        pytest.fail(f"{WHEELS} has no locked wheels yet: run `make test-setup` first "
                    "(it fetches them once; this test installs offline from them)")
    top = tmp_path_factory.mktemp("wheel")
    dist = top / "dist"
    # -P: the checkout (cwd) must not shadow the installed build tools' imports.
    _run([sys.executable, "-P", "-m", "build", "--no-isolation", "--outdir", dist, CHECKOUT],
         cwd=CHECKOUT)
    [wheel] = dist.glob("crid-*.whl")
    [sdist] = dist.glob("crid-*.tar.gz")

    # The Python running the tests is the one the locks were resolved for.
    venv = top / "venv"
    _run([sys.executable, "-m", "venv", venv], cwd=top)
    pip: list[str | Path] = [venv / "bin" / "python", "-m", "pip",
                             "--disable-pip-version-check", "install", "-q", "--no-index"]
    _run([*pip, "--find-links", WHEELS, "--require-hashes", "-r", RUNTIME_LOCK], cwd=top)
    _run([*pip, "--no-deps", wheel], cwd=top)
    installed = Installed(wheel, sdist, venv, top)
    # As the README says, and from where one runs `pip install .`: the checkout,
    # whose crid/ (without oci/) would hide the installed package but for -P.
    _run([installed.python, "-P", "-m", "crid.oci.launcher"], cwd=CHECKOUT)
    return installed


def _source_files() -> set[str]:
    """Every file the wheel must carry, as its path inside the wheel."""
    wanted: set[str] = set()
    for folder, target in SOURCE_FOLDERS.items():
        for pattern in ("*.py", *PACKAGE_DATA):
            for path in (CHECKOUT / folder).rglob(pattern):
                if "__pycache__" not in path.parts:
                    wanted.add(f"{target}/{path.relative_to(CHECKOUT / folder).as_posix()}")
    return wanted


def test_the_wheel_carries_every_module_data_file_and_entry_point(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as whl:
        names = set(whl.namelist())
        info = f"crid-{crid.__version__}.dist-info"
        entry_points = whl.read(f"{info}/entry_points.txt").decode()
        top_level = whl.read(f"{info}/top_level.txt").decode().split()
    wanted = _source_files()
    assert "crid/py.typed" in wanted  # the walk found the tree, so the comparison means something
    assert wanted - names == set(), "the wheel lacks these files (setup.cfg packages/package_data)"
    # Nothing but crid and its metadata: no tests, no e2e, no generic top-level names.
    assert {n for n in names if not n.startswith(("crid/", f"{info}/"))} == set()
    assert top_level == ["crid"]
    assert "crid = crid.cli:main" in entry_points
    assert "crid-runtime = crid.oci.cli:main" in entry_points


def test_the_venv_imports_crid_from_the_wheel_not_the_checkout(installed: Installed) -> None:
    out = installed.run(installed.python, "-c",
                        "import json, sysconfig, crid, crid.api, crid.oci.cli, crid.image, "
                        "crid.network; print(json.dumps([crid.__file__, "
                        "sysconfig.get_path('purelib')]))")
    crid_file, purelib = map(Path, json.loads(out))
    assert crid_file == Path(purelib) / "crid" / "__init__.py"
    assert not crid_file.resolve().is_relative_to(CHECKOUT)
    # Installed from the wheel file, not as an editable project.
    [direct_url] = Path(purelib).glob("crid-*.dist-info/direct_url.json")
    assert "editable" not in json.loads(direct_url.read_text()).get("dir_info", {})
    # The locked runtime dependencies satisfy every requirement the wheel declares.
    assert "No broken requirements" in installed.run(installed.python, "-m", "pip", "check")


def test_the_installed_commands_answer(installed: Installed) -> None:
    version = installed.run(installed.crid, "--version").splitlines()
    assert version[0] == f"crid version {crid.__version__}"
    assert "RuntimeApiVersion: v1" in version

    # The launcher replaced pip's wrapper: no site, only the venv's crid on the path.
    script = installed.crid_runtime.read_text()
    assert script.startswith(f"#!{installed.python} -IS\n")
    assert "written by crid.oci.launcher" in script
    features = json.loads(installed.run(installed.crid_runtime, "features"))
    assert features["ociVersionMin"] == "1.0.0"
    assert "prestart" in features["hooks"] and "bind" in features["mountOptions"]
    assert features["linux"]["namespaces"]
    assert "seccomp" in features["linux"]

    # With no config at all, the crid handler is the crid-runtime beside this crid.
    empty = installed.workdir / "empty.d"
    empty.mkdir(exist_ok=True)
    (installed.workdir / "empty.toml").write_text("")
    config = installed.run(installed.crid, "--config", installed.workdir / "empty.toml",
                           "--config-dir", empty, "config")
    assert f'path = "{installed.crid_runtime}"' in config


@pytest.fixture
def wheel_daemon(installed: Installed) -> Iterator[CridDaemon]:
    handler = f'[crid.runtime.handlers.crid]\npath = "{installed.crid_runtime}"\n'
    with pod_daemon(handler, crid=installed.crid) as (daemon, _net):
        yield daemon


def _cmdline(pid: int | str) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]


def _conmon_of(container_id: str) -> list[str]:
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                argv = _cmdline(proc.name)
            except OSError:
                continue  # exited meanwhile
            if argv and Path(argv[0]).name == "conmon" and "-c" in argv \
                    and argv[argv.index("-c") + 1] == container_id:
                return argv
    raise AssertionError(f"no conmon process for container {container_id}")


def test_the_installed_daemon_runs_a_pod(installed: Installed, wheel_daemon: CridDaemon,
                                         registry: Registry, tmp_path: Path) -> None:
    d = wheel_daemon
    assert d.process is not None
    # The daemon is this venv's Python, with this venv's grpcio core loaded.
    assert _cmdline(d.process.pid)[:2] == [str(installed.python), str(installed.crid)]
    maps = Path(f"/proc/{d.process.pid}/maps").read_text()
    assert f"{installed.venv}/lib/" in maps and str(CHECKOUT / ".venv") not in maps
    status = d.runtime.Status(api_pb2.StatusRequest(verbose=True))
    handlers = json.loads(status.info["config"])["handlers"]
    assert {"name": "crid", "path": str(installed.crid_runtime), "root": ""} in handlers

    run = RunConfig(cmd=("/bin/sh",), env=("PATH=/bin",))
    pushed = push(registry, f"e2e/wheel-{uuid.uuid4().hex[:6]}", "1", busybox_image(config=run))
    d.image.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=pushed.reference)))

    sandbox = pod_config(log_directory=str(tmp_path))
    pod_id = str(d.runtime.RunPodSandbox(
        api_pb2.RunPodSandboxRequest(config=sandbox)).pod_sandbox_id)
    cid = create(d, pod_id, sandbox, pushed.reference, name="wheel", log_path="wheel.log",
                 command=["/bin/sh", "-c", "echo hello from the wheel; exec sleep 600"])
    d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
    wait_state(d, cid, api_pb2.CONTAINER_RUNNING)

    # conmon drives the wheel venv's crid-runtime (the handler's path).
    conmon = _conmon_of(cid)
    assert conmon[conmon.index("-r") + 1] == str(installed.crid_runtime)
    out = exec_sync(d, cid, "/bin/sh", "-c", "echo $((6 * 7))")
    assert (out.exit_code, out.stdout) == (0, b"42\n")

    d.runtime.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=10))
    stopped = wait_state(d, cid, api_pb2.CONTAINER_EXITED)
    assert stopped.exit_code == 143  # sleep, killed by SIGTERM
    assert log_texts(stopped.log_path)[0] == "hello from the wheel"
    d.runtime.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid))
    stop_remove(d, pod_id)
    assert not d.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items
    assert not d.runtime.ListContainers(api_pb2.ListContainersRequest()).containers
