"""Layer unpacking: a (compressed) tar stream written into one layer dir.

The stream is decompressed as it is read (gzip, zstd or plain tar, told apart
by their magic bytes, not the media type), and its uncompressed digest (the
diff ID) computed on the way. Entries become files, dirs, symlinks, hard
links, devices and fifos with their modes, owners, mtimes and xattrs; OCI
whiteouts become overlayfs ones (``.wh.name`` a 0:0 char device ``name``,
``.wh..wh..opq`` the ``trusted.overlay.opaque=y`` xattr on its dir).

Nothing is ever written outside the layer dir. Names are relative to it
(``/etc/x`` means ``<dir>/etc/x``); a name with ``..`` is refused; every
parent is opened component by component with ``O_NOFOLLOW`` from the layer
dir's own fd, so an entry through a symlink (``link -> /`` then
``link/etc/passwd``) is refused rather than followed, and hard links are made
with ``linkat`` between such fds, so their target is inside the layer too.
``trusted.overlay.*`` xattrs from a layer are dropped: they would steer
overlayfs (redirects, metacopy) outside the layer.

Sizes are bounded. The uncompressed stream may carry at most ``limit`` bytes
(a gzip bomb stops there, as does a sparse map of millions of entries, which
lives in the stream too). A sparse entry (GNU tar's old ``S`` type or PAX
sparse 0.x/1.0, ``TarInfo.sparse``) is written sparsely: each data segment at
its offset and the holes left as holes, so a file whose header claims 8 GiB
of zeros costs its few data bytes of disk and time (tarfile is never asked
for a hole's zeros), and only those count in ``Unpacked.size``.
"""

from __future__ import annotations

import copy
import dataclasses
import errno
import gzip
import hashlib
import math
import os
import shutil
import stat
import tarfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Protocol, cast

import zstandard

from crid.errors import InvalidArgument, ResourceExhausted

CHUNK = 1 << 20
TAR_BUFSIZE = 64 * 1024
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
XATTR_PAX_PREFIX = "SCHILY.xattr."
DROPPED_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")
MAX_ID = 2**32 - 1  # (uid_t)-1 means "no change" to chown
MAX_MTIME = 2**63 // 10**9  # seconds whose nanoseconds still fit utime's 64 bits
_DIR_CACHE_LIMIT = 4096
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafeLayer(InvalidArgument):
    """The layer tries to write outside its dir, or is not a valid tar."""


class LayerTooBig(ResourceExhausted):
    """The layer's uncompressed stream is longer than the image size limit allows."""


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


@dataclasses.dataclass(frozen=True)
class Unpacked:
    diff_id: str  # sha256 of the uncompressed tar
    size: int  # bytes of regular file content (a sparse file's data, not its holes)
    inodes: int  # entries created


class _Hashing:
    """Passes reads through, hashing and counting them (the diff ID), up to a limit."""

    def __init__(self, source: Readable, limit: int | None) -> None:
        self._source = source
        self._limit = limit
        self.hash = hashlib.sha256()
        self.count = 0

    def read(self, size: int = -1, /) -> bytes:
        if self._limit is not None:  # never ask for more than one byte past the limit
            room = self._limit - self.count + 1
            size = min(room, CHUNK) if size < 0 else min(size, room)
        data = self._source.read(size)
        self.hash.update(data)
        self.count += len(data)
        if self._limit is not None and self.count > self._limit:
            raise LayerTooBig(f"the layer is more than {self._limit} bytes uncompressed, the "
                              "size limit of an image (crid.image.max_image_bytes)")
        return data


class _Prefixed:
    """A stream with some bytes already read from its front put back."""

    def __init__(self, prefix: bytes, source: Readable) -> None:
        self._prefix = prefix
        self._source = source

    def read(self, size: int = -1, /) -> bytes:
        if self._prefix:
            if size < 0 or size >= len(self._prefix):
                head, self._prefix = self._prefix, b""
                rest = self._source.read(-1 if size < 0 else size - len(head))
                return head + rest
            head, self._prefix = self._prefix[:size], self._prefix[size:]
            return head
        return self._source.read(size)


def decompressed(source: Readable) -> Readable:
    """The uncompressed stream of a gzip, zstd or plain tar stream."""
    head = b""
    while len(head) < 4:
        more = source.read(4 - len(head))
        if not more:
            break
        head += more
    stream = _Prefixed(head, source)
    if head.startswith(GZIP_MAGIC):
        return gzip.GzipFile(fileobj=cast(IO[bytes], stream), mode="rb")
    if head.startswith(ZSTD_MAGIC):
        reader: Readable = zstandard.ZstdDecompressor().stream_reader(
            cast(IO[bytes], stream), read_across_frames=True
        )
        return reader
    return stream


def unpack(source: Readable, dest: Path, *, umask_zero: bool = False,
           limit: int | None = None) -> Unpacked:
    """Unpack the layer stream ``source`` into the existing, empty dir ``dest``.

    ``umask_zero``: the caller set the process umask to 0 (the worker process
    does), so files can be created with their final mode in one call.
    ``limit``: most uncompressed bytes accepted (``LayerTooBig`` past it).
    """
    hashing = _Hashing(decompressed(source), limit)
    with _Tree(os.open(dest, _DIR_FLAGS), umask_zero) as tree:
        try:
            with _open_tar(hashing) as tar:
                for member in _members(tar):
                    tree.add(member, tar.extractfile)
            # The diff ID covers the whole tar, end-of-archive padding included;
            # a stream cut short after the tar's end is as invalid as one cut inside.
            while hashing.read(CHUNK):
                pass
        except (tarfile.TarError, EOFError, zstandard.ZstdError, gzip.BadGzipFile,
                zlib.error) as exc:
            raise UnsafeLayer(f"layer is not a valid (compressed) tar: {exc}") from exc
        tree.finish()
        return Unpacked("sha256:" + hashing.hash.hexdigest(), tree.size, tree.inodes)


@dataclasses.dataclass
class _DirMeta:
    parts: tuple[str, ...]
    member: tarfile.TarInfo


class _Tree:
    """Safe creation of entries below one root dir, by parent-dir fds."""

    def __init__(self, root_fd: int, umask_zero: bool) -> None:
        self._umask_zero = umask_zero
        self._root_fd = root_fd  # owned: closed on exit
        self._cache: dict[tuple[str, ...], int] = {}
        self._dirs: list[_DirMeta] = []
        self.size = 0
        self.inodes = 0

    def __enter__(self) -> _Tree:
        return self

    def __exit__(self, *exc: object) -> None:
        self._drop_cache()
        os.close(self._root_fd)

    def _drop_cache(self, prefix: tuple[str, ...] | None = None) -> None:
        for parts in list(self._cache):
            if prefix is None or parts[: len(prefix)] == prefix:
                os.close(self._cache.pop(parts))

    def dir_fd(self, parts: tuple[str, ...], *, create: bool = True) -> int:
        if len(self._cache) > _DIR_CACHE_LIMIT:
            # Oldest first (dicts keep insertion order); fds of children stay valid.
            for stale in list(self._cache)[: _DIR_CACHE_LIMIT // 2]:
                os.close(self._cache.pop(stale))
        return self._open_dir(parts, create)

    def _open_dir(self, parts: tuple[str, ...], create: bool) -> int:
        if not parts:
            return self._root_fd
        cached = self._cache.get(parts)
        if cached is not None:
            return cached
        parent = self._open_dir(parts[:-1], create)
        name = parts[-1]
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
        except FileNotFoundError:
            if not create:
                raise
            # Tars may omit parent dirs; docker creates them 0755 root.
            os.mkdir(name, 0o755, dir_fd=parent)
            self.inodes += 1
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise UnsafeLayer(
                    f"layer entry path goes through {'/'.join(parts)!r}, which is a symlink "
                    "or a file, not a directory: refused (it could lead outside the layer)"
                ) from None
            raise
        self._cache[parts] = fd
        return fd

    def add(
        self, member: tarfile.TarInfo, extract: Callable[[tarfile.TarInfo], IO[bytes] | None]
    ) -> None:
        parts = _clean(member.name)
        if not parts:
            if member.isdir():
                self._dirs.append(_DirMeta((), member))
            return
        parent_parts, name = parts[:-1], parts[-1]
        parent = self.dir_fd(parent_parts)
        if name == OPAQUE_MARKER:
            os.setxattr(parent, OPAQUE_XATTR, b"y")
            return
        if name.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):
            return  # aufs metadata (.wh..wh.plnk and friends), meaningless here
        if name.startswith(WHITEOUT_PREFIX):
            target = name[len(WHITEOUT_PREFIX):]
            self._remove(parent, (*parent_parts, target))
            os.mknod(target, stat.S_IFCHR | 0o000, os.makedev(0, 0), dir_fd=parent)
            self.inodes += 1
            return
        if member.isdir():
            self._make_dir(parent, parts)
            self._dirs.append(_DirMeta(parts, member))
            return
        if not (member.isreg() or member.issym() or member.islnk() or member.ischr()
                or member.isblk() or member.isfifo()):
            return  # unknown types (e.g. GNU volume headers) carry no file
        try:
            self._create(parent, name, member, extract)
        except FileExistsError:
            # Later entries replace earlier ones (rare: tried second, not first).
            self._remove(parent, parts)
            self._create(parent, name, member, extract)
        self.inodes += 1

    def _create(
        self, parent: int, name: str, member: tarfile.TarInfo,
        extract: Callable[[tarfile.TarInfo], IO[bytes] | None],
    ) -> None:
        if member.isreg():
            self._write_file(parent, name, member, extract)
        elif member.issym():
            os.symlink(member.linkname, name, dir_fd=parent)
            _set_owner_times(parent, name, member)
        elif member.islnk():
            self._link(parent, name, member)
        else:
            kind = (stat.S_IFCHR if member.ischr() else
                    stat.S_IFBLK if member.isblk() else stat.S_IFIFO)
            os.mknod(name, kind | (member.mode & 0o7777),
                     os.makedev(member.devmajor, member.devminor), dir_fd=parent)
            _set_owner_times(parent, name, member, chmod=True)

    def _make_dir(self, parent: int, parts: tuple[str, ...]) -> None:
        try:
            os.mkdir(parts[-1], 0o755, dir_fd=parent)
            self.inodes += 1
        except FileExistsError:
            existing = os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
            if not stat.S_ISDIR(existing.st_mode):
                self._remove(parent, parts)
                os.mkdir(parts[-1], 0o755, dir_fd=parent)

    def _remove(self, parent: int, parts: tuple[str, ...]) -> None:
        """Make room for a new entry: later entries replace earlier ones."""
        name = parts[-1]
        try:
            os.unlink(name, dir_fd=parent)
        except FileNotFoundError:
            pass
        except IsADirectoryError:
            self._drop_cache(parts)
            shutil.rmtree(name, dir_fd=parent)

    def _write_file(
        self, parent: int, name: str, member: tarfile.TarInfo,
        extract: Callable[[tarfile.TarInfo], IO[bytes] | None],
    ) -> None:
        mode = member.mode & 0o7777
        # With umask 0 the file is born with its mode; only root:root needs no chown
        # (no dir is setgid before finish() sets dir modes). Each syscall saved
        # counts: images have tens of thousands of files.
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     mode & 0o777 if self._umask_zero else 0o600, dir_fd=parent)
        try:
            written = 0
            if member.sparse is not None:
                written = _write_sparse(fd, member, extract)
            elif (data := extract(member)) is not None:
                while chunk := data.read(CHUNK):
                    _write_all(fd, chunk)
                    written += len(chunk)
            if member.uid or member.gid:
                os.fchown(fd, member.uid, member.gid)
            if not self._umask_zero or mode & 0o7000:
                os.fchmod(fd, mode)  # after chown, which clears setuid bits
            _set_xattrs(fd, member)
            mtime = _mtime_ns(member)
            os.utime(fd, ns=(mtime, mtime))
        finally:
            os.close(fd)
        self.size += written

    def _link(self, parent: int, name: str, member: tarfile.TarInfo) -> None:
        target = _clean(member.linkname)
        if not target:
            raise UnsafeLayer(f"hard link {member.name!r} points at the layer root")
        try:
            target_parent = self.dir_fd(target[:-1], create=False)
            os.link(target[-1], name, src_dir_fd=target_parent, dst_dir_fd=parent,
                    follow_symlinks=False)
        except FileNotFoundError:
            raise UnsafeLayer(
                f"hard link {member.name!r} -> {member.linkname!r}: the target is not in this layer"
            ) from None

    def finish(self) -> None:
        """Dir metadata last: adding entries changes a dir's mtime."""
        for meta in reversed(self._dirs):
            try:
                fd = self.dir_fd(meta.parts, create=False)
            except (UnsafeLayer, FileNotFoundError):
                continue  # replaced by a later entry
            os.fchown(fd, meta.member.uid, meta.member.gid)
            os.fchmod(fd, meta.member.mode & 0o7777)
            _set_xattrs(fd, meta.member)
            mtime = _mtime_ns(meta.member)
            os.utime(fd, ns=(mtime, mtime))


# tarfile lets a malformed pax record (``size=``, ``GNU.sparse.size=x``) out
# as the ValueError of its int(), and a truncated old-GNU sparse map as an
# IndexError, a size past any file as an OverflowError, reading the first
# entry in open() and each later one in
# next(): that is a bad layer, like any other.
_MALFORMED = (ValueError, IndexError, OverflowError)


def _open_tar(stream: Readable) -> tarfile.TarFile:
    try:
        # A small bufsize: tarfile's stream mode copies its whole buffer on every read.
        return tarfile.open(fileobj=stream, mode="r|", bufsize=TAR_BUFSIZE)  # type: ignore[call-overload,no-any-return]
    except _MALFORMED as exc:
        raise UnsafeLayer(f"layer has a malformed header: {exc}") from exc


def _members(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """The archive's entries, each one's numbers checked before anything is made of it."""
    while True:
        try:
            member = tar.next()
        except _MALFORMED as exc:
            raise UnsafeLayer(f"layer has a malformed header: {exc}") from exc
        if member is None:
            return
        _check_numbers(member)
        yield member


def _check_numbers(member: tarfile.TarInfo) -> None:
    """Ids, device numbers and mtime that the kernel can take (pax allows any)."""
    for field in ("uid", "gid", "devmajor", "devminor"):
        value = getattr(member, field)
        if not 0 <= value < MAX_ID:
            raise UnsafeLayer(f"layer entry {member.name!r}: {field} {value} is out of range")
    if not (math.isfinite(member.mtime) and abs(member.mtime) < MAX_MTIME):
        raise UnsafeLayer(f"layer entry {member.name!r}: mtime {member.mtime} is out of range")
    for key in member.pax_headers:
        if key.startswith(XATTR_PAX_PREFIX) and "\x00" in key:
            raise UnsafeLayer(f"layer entry {member.name!r}: xattr name {key!r} has a NUL byte")


def _write_all(fd: int, chunk: bytes) -> None:
    view = memoryview(chunk)
    while view:
        view = view[os.write(fd, view):]


def _write_sparse(fd: int, member: tarfile.TarInfo,
                  extract: Callable[[tarfile.TarInfo], IO[bytes] | None]) -> int:
    """Each data segment of a sparse member at its offset, the holes left
    unwritten; the file then gets its full (apparent) size. Returns the data
    bytes written.

    tarfile's own reader of a sparse member makes up every hole's zeros
    (gigabytes of them, one buffer at a time), so the member's stored bytes,
    the segments back to back, are read as a plain member of that size instead.
    """
    # typeshed says bytes; tarfile documents and fills a list of (offset, length).
    sparse = cast(list[tuple[int, int]], member.sparse)
    segments = [(offset, length) for offset, length in sparse if length]
    end = 0
    for offset, length in segments:  # end markers and unused old-GNU slots are dropped
        if offset < end or length < 0 or offset + length > member.size:
            raise UnsafeLayer(f"sparse file {member.name!r}: its sparse map has overlapping, "
                              "out-of-order or out-of-range segments")
        end = offset + length
    stored = copy.copy(member)
    stored.sparse = None
    stored.size = sum(length for _, length in segments)
    data = extract(stored)
    assert data is not None
    for offset, length in segments:
        position, left = offset, length
        while left:
            chunk = data.read(min(CHUNK, left))
            if not chunk:
                raise UnsafeLayer(f"sparse file {member.name!r}: its data ends early")
            view = memoryview(chunk)
            while view:
                done = os.pwrite(fd, view, position)
                view, position = view[done:], position + done
            left -= len(chunk)
    try:
        os.ftruncate(fd, member.size)  # holes cost nothing, but the filesystem bounds them
    except OSError as exc:
        raise UnsafeLayer(f"sparse file {member.name!r}: its size {member.size} is more "
                          f"than the filesystem takes ({exc.strerror})") from exc
    return stored.size


def _clean(name: str) -> tuple[str, ...]:
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise UnsafeLayer(f"layer entry {name!r} has a '..' component: refused")
    if any("\x00" in p for p in parts):
        raise UnsafeLayer(f"layer entry {name!r} has a NUL byte")
    return parts


def _mtime_ns(member: tarfile.TarInfo) -> int:
    return int(member.mtime * 1_000_000_000)


def _set_owner_times(
    parent: int, name: str, member: tarfile.TarInfo, *, chmod: bool = False
) -> None:
    # Born root:root like a file (no dir is setgid before finish()): one
    # syscall less for each of the thousands of symlinks in a distro's tree.
    if member.uid or member.gid:
        os.chown(name, member.uid, member.gid, dir_fd=parent, follow_symlinks=False)
    if chmod:
        os.chmod(name, member.mode & 0o7777, dir_fd=parent)
    mtime = _mtime_ns(member)
    os.utime(name, ns=(mtime, mtime), dir_fd=parent, follow_symlinks=False)


def _set_xattrs(fd: int, member: tarfile.TarInfo) -> None:
    for key, value in member.pax_headers.items():
        if not key.startswith(XATTR_PAX_PREFIX):
            continue
        name = key[len(XATTR_PAX_PREFIX):]
        if name.startswith(DROPPED_XATTR_PREFIXES):
            continue
        raw = value.encode("utf-8", "surrogateescape")
        try:
            os.setxattr(fd, name, raw)
        except OSError as exc:
            if exc.errno not in (errno.ENOTSUP, errno.EPERM, errno.EINVAL):
                raise
