"""setup.cfg lists every package, so a wheel install has all of crid's code."""

from __future__ import annotations

import configparser
from pathlib import Path

TOP = Path(__file__).resolve().parent.parent
MAPPED = {"crid": "crid", "api": "crid.api", "oci": "crid.oci",
          "image": "crid.image", "network": "crid.network"}


def test_every_package_folder_is_listed_in_setup_cfg() -> None:
    parser = configparser.ConfigParser()
    parser.read(TOP / "setup.cfg")
    listed = set(parser["options"]["packages"].split())
    on_disk = set()
    for folder, name in MAPPED.items():
        for init in (TOP / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(TOP / folder).parts
            on_disk.add(".".join((name, *relative)))
    assert on_disk - listed == set(), "add these to [options] packages in setup.cfg"
    assert listed - on_disk == set(), "these listed packages have no folder"
