"""The runtime-spec's JSON shapes, as far as crid writes and reads them.

``config.json`` (``Spec`` and its parts), the ``state`` object hooks get and
``crid-runtime state`` prints (``State``) and crid-runtime's own state file
(``ContainerState``). Names follow opencontainers/runtime-spec ``config.md``,
``config-linux.md`` and ``runtime.md``. Every class is ``total=False``: the spec
makes most fields optional and a bundle written by another tool may leave
them out; the few the spec calls REQUIRED are marked ``Required``. Fields
crid neither writes nor reads are left out; a config.json that has them
still loads (they are carried along untouched), they are just not named here.

Types only: crid-runtime imports this module under ``TYPE_CHECKING`` (its
start-up never imports ``typing``); the daemon may import it freely.
"""

from __future__ import annotations

from typing import Literal, Required, TypedDict


class User(TypedDict, total=False):
    # uid and gid are REQUIRED by the spec; crid-runtime reads a missing one as 0,
    # as runc does, and a CDI edit may make a user from {}.
    uid: int
    gid: int
    umask: int
    additionalGids: list[int]


class Capabilities(TypedDict, total=False):
    bounding: list[str]
    effective: list[str]
    inheritable: list[str]
    permitted: list[str]
    ambient: list[str]


class Rlimit(TypedDict):
    type: str
    hard: int
    soft: int


class ConsoleSize(TypedDict):
    height: int
    width: int


class Process(TypedDict, total=False):
    # user and cwd are REQUIRED by the spec; crid-runtime runs a process without
    # them as uid 0 in /, and NRI and CDI edits may make a process from {}.
    terminal: bool
    consoleSize: ConsoleSize
    user: User
    args: list[str]
    env: list[str]
    cwd: str
    capabilities: Capabilities
    rlimits: list[Rlimit]
    noNewPrivileges: bool
    apparmorProfile: str
    oomScoreAdj: int
    selinuxLabel: str


class Root(TypedDict, total=False):
    path: Required[str]
    readonly: bool


class IDMapping(TypedDict):
    containerID: int
    hostID: int
    size: int


# crid-runtime's own key on a loaded mount (crid.oci.rootfs.IDMAP_FD): the fd of
# its idmapped clone, set by crid.oci.idmap for init. Not the spec's; a class
# body would mangle the name, hence this form.
_LoadedMount = TypedDict("_LoadedMount", {"__crid_idmap_fd": int}, total=False)


class Mount(_LoadedMount, total=False):
    destination: Required[str]
    type: str
    source: str
    options: list[str]
    uidMappings: list[IDMapping]
    gidMappings: list[IDMapping]


class Hook(TypedDict, total=False):
    path: Required[str]
    args: list[str]
    env: list[str]
    timeout: int


HookName = Literal["prestart", "createRuntime", "createContainer", "startContainer",
                   "poststart", "poststop"]


class Hooks(TypedDict, total=False):
    prestart: list[Hook]  # deprecated by the spec, still run (runc does)
    createRuntime: list[Hook]
    createContainer: list[Hook]
    startContainer: list[Hook]
    poststart: list[Hook]
    poststop: list[Hook]


class Namespace(TypedDict, total=False):
    type: Required[str]  # pid, network, mount, ipc, uts, user, cgroup, time
    path: str


class Device(TypedDict, total=False):
    """A node made in the container's /dev (``linux.devices``)."""

    path: Required[str]
    type: Required[str]  # c, b, u or p
    major: int
    minor: int
    fileMode: int
    uid: int
    gid: int


class DeviceRule(TypedDict, total=False):
    """An entry of the device cgroup's allow list (``linux.resources.devices``)."""

    allow: bool  # REQUIRED by the spec; missing reads as false, as in runc
    type: str  # a, c or b
    major: int | None  # None: any (the spec's "omitted"; crid writes it out)
    minor: int | None
    access: str  # some of r, w, m


class Memory(TypedDict, total=False):
    limit: int
    reservation: int
    swap: int
    kernel: int
    kernelTCP: int
    swappiness: int
    disableOOMKiller: bool
    useHierarchy: bool
    checkBeforeUpdate: bool


class CPU(TypedDict, total=False):
    shares: int
    quota: int
    burst: int
    period: int
    realtimeRuntime: int
    realtimePeriod: int
    cpus: str
    mems: str
    idle: int


class Pids(TypedDict, total=False):
    limit: int  # REQUIRED by the spec; crid-runtime sets nothing without it


class WeightDevice(TypedDict, total=False):
    major: Required[int]
    minor: Required[int]
    weight: int
    leafWeight: int


class ThrottleDevice(TypedDict):
    major: int
    minor: int
    rate: int


class BlockIO(TypedDict, total=False):
    weight: int
    leafWeight: int
    weightDevice: list[WeightDevice]
    throttleReadBpsDevice: list[ThrottleDevice]
    throttleWriteBpsDevice: list[ThrottleDevice]
    throttleReadIOPSDevice: list[ThrottleDevice]
    throttleWriteIOPSDevice: list[ThrottleDevice]


class HugepageLimit(TypedDict):
    pageSize: str
    limit: int


class Resources(TypedDict, total=False):
    devices: list[DeviceRule]
    memory: Memory
    cpu: CPU
    pids: Pids
    blockIO: BlockIO
    hugepageLimits: list[HugepageLimit]
    unified: dict[str, str]


class SeccompArg(TypedDict, total=False):
    index: Required[int]
    value: Required[int]
    valueTwo: int
    op: Required[str]


class Syscall(TypedDict, total=False):
    names: Required[list[str]]
    action: Required[str]
    errnoRet: int
    args: list[SeccompArg]


class Seccomp(TypedDict, total=False):
    defaultAction: Required[str]
    defaultErrnoRet: int
    architectures: list[str]
    flags: list[str]
    listenerPath: str
    listenerMetadata: str
    syscalls: list[Syscall]


class Personality(TypedDict, total=False):
    domain: Required[str]  # LINUX or LINUX32
    flags: list[str]


class Linux(TypedDict, total=False):
    uidMappings: list[IDMapping]
    gidMappings: list[IDMapping]
    sysctl: dict[str, str]
    resources: Resources
    cgroupsPath: str
    namespaces: list[Namespace]
    devices: list[Device]
    seccomp: Seccomp
    rootfsPropagation: str
    maskedPaths: list[str]
    readonlyPaths: list[str]
    mountLabel: str
    personality: Personality


class Spec(TypedDict, total=False):
    """A bundle's config.json."""

    # REQUIRED by the spec, and checked when crid-runtime loads a bundle
    # (crid.oci.config); optional here for the state of a container whose
    # config the runtime no longer has, which it reads as {}.
    ociVersion: str
    process: Process
    root: Root
    hostname: str
    domainname: str
    mounts: list[Mount]
    hooks: Hooks
    annotations: dict[str, str]
    linux: Linux


class State(TypedDict, total=False):
    """The runtime-spec state object: what hooks get on stdin and ``crid-runtime
    state`` prints (that one with runc's extra ``rootfs``, ``created``, ``owner``)."""

    ociVersion: Required[str]
    id: Required[str]
    status: Required[str]  # creating, created, running, stopped (and runc's paused)
    pid: int
    bundle: Required[str]
    annotations: dict[str, str]
    rootfs: str
    created: str
    owner: str


class ContainerState(TypedDict, total=False):
    """crid-runtime's own ``<root>/<id>/state.json``: what the later verbs need."""

    id: Required[str]
    pid: Required[int]
    pid_start: int | None  # start time of pid, to tell it from a reused pid
    bundle: Required[str]
    rootfs: str
    ociVersion: str
    created: str  # RFC 3339
    annotations: dict[str, str]
    cgroup: dict[str, str]  # controller (or "unified") -> the container's cgroup dir
    config: Spec
