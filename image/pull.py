"""One image pull, start to finish (blocking; the service runs it in a thread).

resolve the reference against registries.conf (mirrors in order, then the
registry) -> manifest, or index then this node's platform -> config ->
layers, several at a time, each streamed from the registry straight into
its unpacker (digest and diff ID verified before the layer dir is committed;
layers already unpacked are skipped) -> manifests and config into the content
store -> the image record. A failure leaves no layer, blob or record that
only this pull made; a disk that fills up on the way is ``DiskFull``
(RESOURCE_EXHAUSTED) naming the dir whose filesystem is full.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import platform as platform_module
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

from crid.image import auth, registries
from crid.image.auth import Credentials
from crid.image.content import ContentStore, DigestMismatch
from crid.image.records import ImageRecord, ImageRecords, user_of
from crid.image.reference import Reference, is_digest, parse
from crid.image.registry_client import (
    INDEX_TYPES,
    Descriptor,
    Manifest,
    RegistryClient,
    Transport,
    json_object,
)
from crid.image.snapshots import Snapshots, chain_ids
from crid.image.unpack_worker import Unpackers

from crid.disk_full import is_disk_full
from crid.errors import (
    CridError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
)
from crid.jsontypes import Json

MAX_CONFIG_BYTES = 8 * 1024 * 1024
# Unpacked size of one image (crid.image.max_image_bytes): file data of all its
# layers together, a sparse file counting its data, not its holes; and each
# layer's uncompressed stream. Larger than any real image we know of (CUDA
# images unpack to ~20 GiB); a decompression bomb stops here, not at a full disk.
DEFAULT_MAX_IMAGE_BYTES = 64 << 30
CONFIG_TYPES = (
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
)
LAYER_TYPES = frozenset(
    prefix + suffix
    for prefix in ("application/vnd.oci.image.layer.v1.tar",
                   "application/vnd.oci.image.layer.nondistributable.v1.tar",
                   "application/vnd.docker.image.rootfs.diff.tar",
                   "application/vnd.docker.image.rootfs.foreign.diff.tar")
    for suffix in ("", "+gzip", "+zstd", ".gzip", ".zstd")
)
_ARCHITECTURES = {
    "x86_64": ("amd64", ""), "aarch64": ("arm64", "v8"), "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"), "i686": ("386", ""), "ppc64le": ("ppc64le", ""),
    "s390x": ("s390x", ""), "riscv64": ("riscv64", ""),
}


@dataclasses.dataclass(frozen=True)
class Platform:
    os: str = "linux"
    architecture: str = "amd64"
    variant: str = ""

    @classmethod
    def host(cls) -> Platform:
        machine = platform_module.machine()
        architecture, variant = _ARCHITECTURES.get(machine, (machine, ""))
        return cls("linux", architecture, variant)

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


class Observer(Protocol):
    """Told of progress: bytes as they arrive, and named events."""

    def bytes(self, count: int) -> None: ...

    def event(self, message: str, **fields: Any) -> None: ...


@dataclasses.dataclass(frozen=True)
class Settings:
    registries_conf: Path
    auth_file: Path | None
    parallel: int
    platform: Platform
    pinned: tuple[str, ...] = ()
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES


def select_platform(index: Manifest, wanted: Platform) -> Descriptor:
    entries = [Descriptor.parse(m, f"index {index.digest}")
               for m in _list(index.document, "manifests", f"index {index.digest}")]

    def fits(entry: Descriptor, variants: tuple[str, ...]) -> bool:
        p = entry.platform
        return (p.get("os") == wanted.os and p.get("architecture") == wanted.architecture
                and p.get("variant", "") in variants)

    # The exact variant first, then entries that name none (arm64 is v8 by default).
    for variants in ((wanted.variant,), ("", wanted.variant)):
        found = [e for e in entries if fits(e, variants)]
        if found:
            return found[0]
    have = sorted({"/".join(v for v in (e.platform.get("os", "?"),
                                        e.platform.get("architecture", "?"),
                                        e.platform.get("variant", "")) if v)
                   for e in entries})
    raise NotFound(f"index {index.digest} has no image for {wanted} (it has: "
                   f"{', '.join(have) or 'nothing'})")


def image_parts(manifest: Manifest, where: str) -> tuple[Descriptor, list[Descriptor]]:
    """An image manifest's config and layer descriptors, their media types checked."""
    config_desc = Descriptor.parse(manifest.document.get("config"), where)
    if config_desc.media_type not in CONFIG_TYPES:
        raise FailedPrecondition(
            f"{where}: config media type {config_desc.media_type!r} is not an image config "
            "(is this an artifact rather than a container image?)")
    layers = [Descriptor.parse(d, where) for d in _list(manifest.document, "layers", where)]
    for layer in layers:
        if layer.media_type not in LAYER_TYPES:
            raise FailedPrecondition(f"{where}: layer {layer.digest} has unsupported media "
                                     f"type {layer.media_type!r}")
    return config_desc, layers


def layer_diff_ids(config: Json, layers: list[Descriptor], where: str) -> list[str]:
    """The image config's ``rootfs.diff_ids``: sha256 digests, one per layer."""
    rootfs = config.get("rootfs") or {}
    if not isinstance(rootfs, dict):
        raise InvalidArgument(f"{where}: the config's rootfs is not an object")
    diff_ids = [str(d) for d in _list(rootfs, "diff_ids", f"{where}: the config's rootfs")]
    if not all(map(is_digest, diff_ids)):
        raise InvalidArgument(f"{where}: the config's rootfs.diff_ids are not all sha256 "
                              "digests")
    if len(diff_ids) != len(layers):
        raise InvalidArgument(f"{where}: {len(layers)} layers but the config lists "
                              f"{len(diff_ids)} diff_ids")
    return diff_ids


def _list(document: Json, key: str, where: str) -> list[Any]:
    """``document[key]``, a JSON array (missing or null: empty)."""
    value = document.get(key) or []
    if not isinstance(value, list):
        raise InvalidArgument(f"{where}: {key} is not a list")
    return value


class Puller:
    def __init__(self, settings: Settings, content: ContentStore, snapshots: Snapshots,
                 records: ImageRecords, transport: Transport, now_ns: Callable[[], int],
                 unpackers: Unpackers) -> None:
        self.settings = settings
        self.unpackers = unpackers
        self.content = content
        self.snapshots = snapshots
        self.records = records
        self.transport = transport
        self.now_ns = now_ns
        # Chain IDs some running pull relies on: never cleaned up under it.
        self._active: collections.Counter[str] = collections.Counter()
        # Held while records and what they reference change together (commit, cleanup).
        self.guard = threading.RLock()

    def pull(self, text: str, credentials: Credentials | None, observer: Observer) -> ImageRecord:
        ref = parse(text)
        conf = registries.load(self.settings.registries_conf)
        failures: list[CridError] = []
        for candidate in conf.candidates(ref):
            for endpoint in conf.endpoints(candidate):
                creds = self._credentials(credentials, candidate, endpoint)
                client = RegistryClient(self.transport, endpoint, creds)
                try:
                    top = client.manifest(candidate.version)
                except CridError as exc:
                    observer.event("endpoint failed", endpoint=str(endpoint), error=exc.message)
                    failures.append(exc)
                    continue
                observer.event("resolved", endpoint=str(endpoint), digest=top.digest)
                return self._pull_from(client, candidate, top, observer)
        if len(failures) == 1:
            raise failures[0]
        kind = NotFound if all(isinstance(f, NotFound) for f in failures) else type(failures[-1])
        raise kind(f"pulling {ref}: every endpoint failed: "
                   + "; ".join(f.message for f in failures))

    def _credentials(self, given: Credentials | None, ref: Reference,
                     endpoint: registries.Endpoint) -> Credentials | None:
        """The request's credentials where they apply, else the auth file's for this host."""
        if given and given.applies_to(ref.domain, endpoint.host, mirror=endpoint.mirror):
            return given
        return self._auth_file(endpoint.host)

    def _auth_file(self, host: str) -> Credentials | None:
        if self.settings.auth_file is None:
            return None
        return auth.from_auth_file(self.settings.auth_file, host)

    def _pull_from(self, client: RegistryClient, ref: Reference, top: Manifest,
                   observer: Observer) -> ImageRecord:
        manifest = top
        if top.media_type in INDEX_TYPES:
            chosen = select_platform(top, self.settings.platform)
            observer.event("platform chosen", platform=str(self.settings.platform),
                           digest=chosen.digest)
            manifest = client.manifest(chosen.digest, chosen)
            if manifest.media_type in INDEX_TYPES:
                raise InvalidArgument(f"{ref}: an index inside an index is not supported")
        where = f"{ref} manifest {manifest.digest}"
        config_desc, layers = image_parts(manifest, where)
        config_bytes = client.blob_bytes(config_desc, MAX_CONFIG_BYTES)
        config = json_object(config_bytes, f"{where}: the image config")
        diff_ids = layer_diff_ids(config, layers, where)
        chains = chain_ids(diff_ids)
        with self._using(chains):
            created = self._fetch_layers(client, layers, diff_ids, chains, observer)
            try:
                self._check_size(ref, chains)
                return self._commit(ref, top, manifest, config_desc, config_bytes, config,
                                    chains, layers)
            except BaseException:
                self._discard(created)
                raise

    def _fetch_layers(self, client: RegistryClient, layers: list[Descriptor],
                      diff_ids: list[str], chains: list[str], observer: Observer) -> list[str]:
        """Unpack every missing layer; returns the chain IDs this pull created."""
        created: list[str] = []
        with concurrent.futures.ThreadPoolExecutor(
            max_workers=max(1, self.settings.parallel), thread_name_prefix="crid-layer"
        ) as pool:
            futures = [pool.submit(self._layer, client, layer, diff_id, chain, observer)
                       for layer, diff_id, chain in zip(layers, diff_ids, chains, strict=True)]
            error: BaseException | None = None
            for chain, future in zip(chains, futures, strict=True):
                try:
                    if future.result():
                        created.append(chain)
                except BaseException as exc:
                    error = error or exc
                    for other in futures:
                        other.cancel()
        if error is not None:
            self._discard(created)
            raise error
        return created

    def _layer(self, client: RegistryClient, layer: Descriptor, diff_id: str, chain: str,
               observer: Observer) -> bool:
        with self.snapshots.lock(chain):
            if self.snapshots.exists(chain):
                observer.event("layer present", digest=layer.digest, chain_id=chain)
                return False
            stream = client.blob(layer, observer.bytes)
            try:
                with self.snapshots.prepare(chain) as target:
                    try:
                        result = self.unpackers.unpack(stream, target,
                                                       self.settings.max_image_bytes)
                        stream.finish()
                    except DigestMismatch:
                        raise
                    except (CridError, OSError) as exc:
                        if is_disk_full(exc):  # not the bytes' fault: don't read the rest
                            raise
                        # Bad bytes are the likelier story than a bad tar: say so if true.
                        try:
                            stream.finish()
                        except DigestMismatch as mismatch:
                            raise mismatch from exc
                        if isinstance(exc, CridError):
                            raise type(exc)(f"layer {layer.digest}: {exc.message}") from exc
                        raise
                    if result.diff_id != diff_id:
                        raise DigestMismatch(
                            f"layer {layer.digest}: uncompressed content is {result.diff_id}, "
                            f"the image config says {diff_id}")
            finally:
                stream.close()
            try:
                self.records.add_layer(chain, diff_id, result.size, result.inodes, self.now_ns())
            except BaseException:  # (a full database, say): no layer dir without its row
                self.snapshots.remove(chain)
                raise
            observer.event("layer unpacked", digest=layer.digest, chain_id=chain,
                           bytes=layer.size, files=result.inodes)
            return True

    def _check_size(self, ref: Reference, chains: list[str]) -> None:
        """The image's layers together stay within the image size limit."""
        sizes = self.records.layers()
        total = sum(sizes[c][0] for c in chains if c in sizes)
        limit = self.settings.max_image_bytes
        if total > limit:
            raise ResourceExhausted(
                f"{ref}: its layers unpack to {total} bytes, more than the {limit} allowed "
                "for an image (crid.image.max_image_bytes)")

    def _commit(self, ref: Reference, top: Manifest, manifest: Manifest, config_desc: Descriptor,
                config_bytes: bytes, config: Json, chains: list[str],
                layers: list[Descriptor]) -> ImageRecord:
        uid, username = user_of(config)
        tags = [] if ref.digest else [f"{ref.name}:{ref.tag}"]
        digests = [f"{ref.name}@{top.digest}"]
        pinned = bool({str(parse(p)) for p in self.settings.pinned}
                      & {*tags, *digests, str(ref)})
        record = ImageRecord(
            id=config_desc.digest,
            manifest_digest=top.digest,
            config=config_bytes.decode(),
            chain_ids=tuple(chains),
            blobs=tuple(dict.fromkeys((top.digest, manifest.digest, config_desc.digest))),
            size=sum(layer.size for layer in layers) + config_desc.size,
            uid=uid,
            username=username,
            pinned=pinned,
            created_ns=self.now_ns(),
        )
        with self.guard:  # a collection must not delete the blobs before the record names them
            documents = {top.digest: top.data, manifest.digest: manifest.data,
                         config_desc.digest: config_bytes}
            written: list[str] = []
            try:
                for digest, data in documents.items():
                    if not self.content.has(digest):
                        size = config_desc.size if digest == config_desc.digest else None
                        self.content.write(digest, data, size)
                        written.append(digest)
                self.records.add(record, tags, digests)
            except BaseException:  # a full disk, say: no blob that no record names
                named = {b for image in self.records.all() for b in image.blobs}
                for digest in written:
                    if digest not in named:
                        self.content.delete(digest)
                raise
        stored = self.records.get(record.id)
        assert stored is not None
        return stored

    @contextlib.contextmanager
    def _using(self, chains: list[str]) -> Iterator[None]:
        """Marks chain IDs as relied on by a running pull for the block's length."""
        with self.guard:
            self._active.update(chains)
        try:
            yield
        finally:
            with self.guard:
                self._active.subtract(chains)
                self._active = +self._active  # drops the zeros

    def _discard(self, created: list[str]) -> None:
        """Remove layers this pull made that nothing else uses now."""
        with self.guard:
            referenced = {c for image in self.records.all() for c in image.chain_ids}
            doomed = [c for c in created if c not in referenced and self._active[c] <= 1]
            for chain in doomed:
                self.snapshots.remove(chain)
            self.records.remove_layers(doomed)

    def active(self) -> set[str]:
        with self.guard:
            return set(self._active)

