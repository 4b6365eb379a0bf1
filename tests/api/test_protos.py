"""The checked-in modules generated from api/*.proto are what protoc makes of them now."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cri_api.v1 import api_pb2
from google.protobuf import descriptor_pb2

API = Path(__file__).resolve().parents[2] / "api"
PROTOS = ("nri", "ttrpc", "cri_supplement")


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """As `make protos` makes them (the CRI's api.proto read from the stubs)."""
    out = tmp_path_factory.mktemp("protos")
    cri = descriptor_pb2.FileDescriptorSet()
    cri.file.add().MergeFromString(api_pb2.DESCRIPTOR.serialized_pb)
    (out / "cri_api.pb").write_bytes(cri.SerializeToString())
    subprocess.run(
        [sys.executable, "-P", "-m", "grpc_tools.protoc", f"--proto_path=crid/api={API}",
         f"--descriptor_set_in={out / 'cri_api.pb'}",
         f"--python_out={out}", f"--pyi_out={out}",
         *(f"crid/api/{name}.proto" for name in PROTOS)],
        check=True)
    return out / "crid" / "api"


@pytest.mark.parametrize("name", PROTOS)
@pytest.mark.parametrize("suffix", ("_pb2.py", "_pb2.pyi"))
def test_generated_module_is_current(generated: Path, name: str, suffix: str) -> None:
    fresh = (generated / f"{name}{suffix}").read_text()
    assert (API / f"{name}{suffix}").read_text() == as_make_protos_leaves_it(fresh), (
        f"api/{name}{suffix} is stale: run `make protos` and commit the result")


def as_make_protos_leaves_it(generated: str) -> str:
    """The Makefile's two seds: NRI's enum value None cannot be declared in a stub,
    and the CRI's api.proto is the stubs' module."""
    lines = generated.splitlines(keepends=True)
    return "".join(
        line.replace("from v1 import ", "from cri_api.v1 import ", 1)
        if line.startswith("from v1 import ") else line
        for line in lines if not line.lstrip().startswith("None: "))


def test_nri_wire_facts() -> None:
    """Spot checks of numbers a typo would break (the whole file is the contract)."""
    from crid.api import nri_pb2

    container = nri_pb2.Container.DESCRIPTOR
    assert container.fields_by_name["CDI_devices"].number == 20
    assert container.fields_by_name["user"].number == 21
    adjust = nri_pb2.ContainerAdjustment.DESCRIPTOR
    assert adjust.fields_by_name["annotations"].number == 2
    assert adjust.fields_by_name["args"].number == 9
    assert nri_pb2.ConfigureResponse.DESCRIPTOR.fields_by_name["events"].number == 2
    plugin = nri_pb2.DESCRIPTOR.services_by_name["Plugin"]
    assert plugin.full_name == "nri.pkg.api.v1alpha1.Plugin"
    assert nri_pb2.Event.Value("LAST") == 15
