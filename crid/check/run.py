"""``crid check [--repair] [--json]``: run every kind of finding, print, repair.

Exit 0 when clean, 1 when something was found (after ``--repair``: when
something is still found, re-checked after the repairs), 2 for a repair
refused because a daemon holds the root. Repairs run in an order where each
can still use what it needs: the network's DEL before the pod dir's netns
pin goes, conmons before their bundles, bundles before cgroups; what is
left is looked at again (a repair may leave an exit file behind).
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from crid.check import cgroups, containers, firewall, images, network, pods, view
from crid.check.findings import Finding, to_json, to_text
from crid.config import Config
from crid.network.cni.manager import Settings

CLEAN, FOUND, REFUSED = 0, 1, 2
REPAIR_PASSES = 3


def find(config: Config, settings: Settings) -> list[Finding]:
    """Every finding, in the order their repairs must run."""
    try:
        seen = view.load(config)
    except (OSError, sqlite3.Error) as exc:
        return [Finding("check-failed", "store", f"cannot read {config.root}: {exc}")]
    if not seen.store_ok and seen.database.exists():
        # Compared with no rows, everything on the node would look leaked.
        return [Finding("check-failed", str(seen.database),
                        "not a whole crid store (truncated, or from another program)")]
    kinds: list[tuple[str, Callable[[], list[Finding]]]] = [
        ("network", lambda: network.find(seen, settings)),
        ("iptables", lambda: firewall.find(
            seen, settings, lambda pod_id: network.deleter(seen, settings, pod_id),
            lambda pod_id: pods.traced(seen, pod_id))),
        ("pods", lambda: pods.find(seen)),
        ("containers", lambda: containers.find(seen)),
        ("cgroups", lambda: cgroups.find(seen)),
        ("images", lambda: images.find(seen)),
    ]
    return [finding for name, kind in kinds for finding in _run(name, kind)]


def _run(name: str, kind: Callable[[], list[Finding]]) -> list[Finding]:
    """One kind's findings. Beside a running daemon a dir may go while it is
    read: that kind looks once more. What still cannot be read is a finding
    itself (the check is not clean when it could not look)."""
    for attempt in range(2):
        try:
            return kind()
        except FileNotFoundError as exc:
            if attempt:
                return [Finding("check-failed", name, str(exc))]
        except (OSError, subprocess.SubprocessError, sqlite3.Error) as exc:
            return [Finding("check-failed", name, str(exc))]
    return []  # not reached: the second attempt returns


def main(config: Config, settings: Settings, *, repair: bool, as_json: bool,
         out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    if not repair:
        findings = find(config, settings)
        out.write(to_json(findings) if as_json else to_text(findings))
        return FOUND if findings else CLEAN
    with view.exclusive(Path(config.root)) as held:
        if not held:
            err.write(f"crid check: a crid daemon holds {config.root}; stop it before "
                      "--repair (a check without --repair works beside it)\n")
            return REFUSED
        if not view.load(config).store_ok:
            err.write(f"crid check: no whole store in {config.root}; --repair acts only "
                      "against one (with no rows, everything would look leaked)\n")
            return REFUSED
        repaired: list[dict[str, str]] = []
        left = find(config, settings)
        # A repair can leave a new difference behind (a container killed with
        # its runtime state leaves an exit file): look again, a few times.
        for _ in range(REPAIR_PASSES):
            done = _repair(left, err)
            if not done:
                break
            repaired += done
            left = find(config, settings)
    if as_json:
        out.write(to_json(left, repaired))
    else:
        for fixed in repaired:
            out.write(f"repaired\t{fixed['kind']}\t{fixed['subject']}\t{fixed['did']}\n")
        out.write(to_text(left))
    return FOUND if left else CLEAN


def _repair(findings: list[Finding], err: TextIO) -> list[dict[str, str]]:
    done: list[dict[str, str]] = []
    for finding in findings:
        if finding.repair is None:
            continue
        try:
            finding.repair()
        except Exception as exc:  # one failed repair must not stop the rest
            err.write(f"crid check: could not repair {finding.kind} {finding.subject}: {exc}\n")
            continue
        done.append({"kind": finding.kind, "subject": finding.subject,
                     "did": finding.repair_text})
    return done
