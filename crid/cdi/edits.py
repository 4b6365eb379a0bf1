"""Apply CDI container edits to a runtime-spec (config.json as a dict).

What each edit does, as upstream's ``ContainerEdits.Apply``:

- ``env``: set in ``process.env`` (a name already there is replaced);
- ``deviceNodes``: a node in ``linux.devices`` (one at the same path is
  replaced) and, unless its permissions are ``none``, a rule admitting it in
  ``linux.resources.devices`` (the cgroup device program); type, numbers and
  file mode come from the host's node where the file leaves them out; owner
  is the file's, else the container's user when not root;
- ``mounts``: a mount (one at the same destination is replaced); mounts are
  then ordered parents first, keeping order otherwise;
- ``hooks``: appended to ``hooks.<hookName>``;
- ``additionalGids``: added to ``process.user.additionalGids`` (0 ignored).

The host's node must exist and be a char or block device, and numbers the
file gives must match it: containers never get a node for something other
than the device the operator's file points at. Everything is checked before
the spec is touched, so a refusal leaves it as it was.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import cast

from crid.cdi.spec import NO_PERMISSIONS, DeviceNode, Edits, Mount
from crid.errors import InvalidArgument
from crid.oci.runtime_spec import Hook, HookName, Linux, Spec, User
from crid.oci.runtime_spec import Mount as SpecMount
from crid.oci.spec.host import DeviceNode as HostNode
from crid.oci.spec.host import device_node

# Where a node's facts come from; the real /dev unless a test says otherwise.
NodeLookup = Callable[[str], HostNode | None]  # None: not a device; FileNotFoundError: none


def host_node(path: str) -> HostNode | None:
    """The char or block device at ``path`` (symlinks followed, as /dev/dri/by-path/*)."""
    return device_node(path, os.stat(path))


def apply(spec: Spec, edits: Sequence[tuple[str, Edits]],
          lookup: NodeLookup = host_node) -> None:
    """Apply each ``(whose, edits)`` in order; ``whose`` names the device (or spec
    file) in messages. Raises InvalidArgument, leaving ``spec`` unchanged."""
    nodes: list[tuple[DeviceNode, HostNode]] = []
    for whose, e in edits:
        if e.unsupported:
            raise InvalidArgument(
                f"CDI device {whose}: crid cannot apply {' and '.join(e.unsupported)} edits")
        nodes += [(n, _host(whose, n, lookup)) for n in e.device_nodes]

    process = spec.setdefault("process", {})
    user = process.setdefault("user", {})
    for _, e in edits:
        for entry in e.env:
            _set_env(process.setdefault("env", []), entry)
        for mount in e.mounts:
            _add_mount(spec.setdefault("mounts", []), mount)
        for hook in e.hooks:
            found: Hook = {"path": hook.path}
            if hook.args:
                found["args"] = list(hook.args)
            if hook.env:
                found["env"] = list(hook.env)
            if hook.timeout is not None:
                found["timeout"] = hook.timeout
            # crid.cdi.spec admits only the runtime-spec's hook names.
            kind = cast(HookName, hook.hook_name)
            spec.setdefault("hooks", {}).setdefault(kind, []).append(found)
        gids = user.setdefault("additionalGids", [])
        gids += [g for g in dict.fromkeys(e.additional_gids) if g and g not in gids]
    linux = spec.setdefault("linux", {})
    for node, host in nodes:
        _add_node(linux, node, host, user)
    if "mounts" in spec:
        spec["mounts"].sort(key=lambda m: os.path.normpath(m["destination"]).count("/"))


def _host(whose: str, node: DeviceNode, lookup: NodeLookup) -> HostNode:
    where = f"CDI device {whose}: device node {node.path}"
    try:
        found = lookup(node.host_path)
    except FileNotFoundError:
        raise InvalidArgument(f"{where}: {node.host_path} does not exist on this node") from None
    except OSError as exc:
        raise InvalidArgument(f"{where}: cannot stat {node.host_path}: {exc.strerror}") from None
    if found is None:
        raise InvalidArgument(f"{where}: {node.host_path} is not a char or block device")
    kind = {"u": "c"}.get(node.type, node.type)
    if kind and kind != found.kind:
        raise InvalidArgument(f"{where}: type {node.type!r} does not match {node.host_path} "
                              f"(a {'block' if found.kind == 'b' else 'char'} device)")
    for what, given, real in (("major", node.major, found.major),
                              ("minor", node.minor, found.minor)):
        if given is not None and given != real:
            raise InvalidArgument(f"{where}: {what} {given} does not match {node.host_path} "
                                  f"({found.major}:{found.minor})")
    return found


def _add_node(linux: Linux, node: DeviceNode, host: HostNode, user: User) -> None:
    uid = node.uid if node.uid is not None else int(user.get("uid") or 0)
    gid = node.gid if node.gid is not None else int(user.get("gid") or 0)
    devices = [d for d in linux.get("devices") or [] if d.get("path") != node.path]
    devices.append({
        "path": node.path, "type": node.type or host.kind, "major": host.major,
        "minor": host.minor, "fileMode": host.mode if node.file_mode is None else node.file_mode,
        "uid": uid, "gid": gid,
    })
    linux["devices"] = devices
    if node.permissions != NO_PERMISSIONS:
        linux.setdefault("resources", {}).setdefault("devices", []).append({
            "allow": True, "type": host.kind, "major": host.major, "minor": host.minor,
            "access": node.permissions or "rwm"})


def _set_env(env: list[str], entry: str) -> None:
    name = entry.split("=", 1)[0]
    for i, existing in enumerate(env):
        if existing.split("=", 1)[0] == name:
            env[i] = entry
            return
    env.append(entry)


def _add_mount(mounts: list[SpecMount], mount: Mount) -> None:
    options = list(mount.options)
    kind = mount.type
    if kind in ("", "none", "bind") or {"bind", "rbind"} & set(options):
        # A bind whatever the file calls it: the runtime binds on the option.
        kind = "bind"
        if not {"bind", "rbind"} & set(options):
            options.append("bind")
    mounts[:] = [m for m in mounts if m.get("destination") != mount.container_path]
    mounts.append({"destination": mount.container_path, "type": kind,
                   "source": mount.host_path, "options": options})
