"""The local disk spool: where click events wait while Kafka cannot take them.

Append-only files of newline-separated JSON events in one directory. Each writer
(process) appends to its own file, ``{time_ns}-{pid}.spool``, one ``write()`` per batch; a
file is closed (renamed to ``.ready``) when it grows past a size or when its writer
stops, and only ready files are replayed. Replaying claims a file by renaming it to
``.replaying`` (atomic, so two workers never replay one file), sends it in order, records
how far it got in a ``.offset`` sidecar after every acknowledged batch, and deletes it
at the end. A worker that dies mid-replay leaves the claim and its offset; the next
replayer takes the claim over when that pid is gone, and resumes after the offset, so
no event is sent twice by the spool (and event ids let the consumer catch any double).

Files are named by creation time, so replay follows the order events were spooled.
All methods but :meth:`Spool.batches` (parsing only) block (disk I/O) and are called
through ``asyncio.to_thread``.

Durability, and why not an fsync per batch: the spool exists for the death of the
process (SIGKILL, OOM kill, a crash). Once ``write()`` has returned, the bytes are in the
kernel's page cache and survive that, fsync or not. fsync adds only survival of a crash
of the machine (power loss, kernel panic), which also takes whatever is still in the
process's memory, so it cannot make delivery lossless anyway; and it costs a disk flush
per batch (milliseconds, tens on a busy or virtual disk) during which the next events
wait in memory, which is exactly the window a SIGKILL can lose. So ``append`` only
writes, and the file is fsynced at most once per ``fsync_interval`` (by ``append`` or by
:meth:`sync_if_due`, which the emitter calls periodically) and when it is sealed: a machine
crash can lose up to that interval of spooled events on top of the in-memory window.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

_MAX_FILE_BYTES = 16 * 1024 * 1024
# The encoder's own text for the link id. Inside a string value the quotes would be
# escaped (``\\"link_id\\":``), so a match is the key itself.
_LINK_ID = re.compile(rb'"link_id":(\d+)[,}]')

# A spooled event: (its link id, its JSON line).
Entry = tuple[int, bytes]


class Spool:
    def __init__(self, directory: Path, fsync_interval: float = 1.0) -> None:
        self.directory = directory
        self._fsync_interval = fsync_interval
        self._current: Path | None = None
        self._fd: int | None = None
        self._size = 0
        self._unsynced = False
        self._synced_at = 0.0

    def _ensure_dir(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

    def append(self, lines: list[bytes]) -> None:
        """Appends the events (one write; see the module's note on fsync); raises
        OSError (disk full, unwritable directory) to the caller."""
        if self._fd is None:
            self._ensure_dir()
            self._current = self.directory / f"{time.time_ns():020d}-{os.getpid()}.spool"
            self._fd = os.open(self._current, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._size = 0
        data = b"".join(line + b"\n" for line in lines)
        view = memoryview(data)
        try:
            while view:  # a regular file takes it all at once unless the disk is full
                view = view[os.write(self._fd, view):]
        except OSError:
            # Disk full mid-batch: cut the torn part, so the file stays whole lines.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._size)
            raise
        self._size += len(data)
        self._unsynced = True
        if self._size >= _MAX_FILE_BYTES:
            self.seal()
        else:
            self.sync_if_due()

    @property
    def sync_due(self) -> bool:
        """Whether the current file has data unsynced for longer than the interval (no
        I/O: the emitter asks on the event loop)."""
        return self._unsynced and time.monotonic() - self._synced_at >= self._fsync_interval

    def sync_if_due(self) -> None:
        if self.sync_due:
            self._sync()

    def _sync(self) -> None:
        if self._fd is not None and self._unsynced:
            os.fsync(self._fd)
        self._unsynced = False
        self._synced_at = time.monotonic()

    def seal(self) -> None:
        """Makes the current file replayable (fsynced first); the next append starts a
        new file."""
        if self._fd is not None:
            try:
                self._sync()
            finally:
                os.close(self._fd)
                self._fd = None
        if self._current is not None and self._current.exists():
            self._current.rename(self._current.with_suffix(".ready"))
        self._current = None

    def pending(self) -> bool:
        if not self.directory.is_dir():
            return False
        return any(self._replayable())

    def _replayable(self) -> Iterator[Path]:
        for path in sorted(self.directory.iterdir()):
            if path.suffix == ".ready" or (
                path.suffix == ".replaying" and not _alive(_claimer(path))
            ):
                yield path
            elif path.suffix == ".spool" and path != self._current and not _alive(
                _writer(path)
            ):
                yield path  # its writer died without sealing it

    def claim(self) -> Path | None:
        """The oldest replayable file, renamed to ``.replaying`` for this process."""
        if not self.directory.is_dir():
            return None
        for path in self._replayable():
            claimed = path.with_name(f"{_stem(path)}.{os.getpid()}.replaying")
            try:
                path.rename(claimed)
            except FileNotFoundError:
                continue  # another worker was faster
            old_offset = path.with_suffix(".offset")
            if old_offset.exists():
                old_offset.rename(claimed.with_suffix(".offset"))
            return claimed
        return None

    @staticmethod
    def load(claimed: Path) -> tuple[bytes, int]:
        """The bytes of ``claimed`` after the offset already sent, and that offset: the
        file I/O of a replay, called in a thread."""
        offset_file = claimed.with_suffix(".offset")
        offset = int(offset_file.read_text()) if offset_file.exists() else 0
        with claimed.open("rb") as handle:
            handle.seek(offset)
            return handle.read(), offset

    @staticmethod
    def batches(data: bytes, offset: int, size: int) -> Iterator[tuple[list[Entry], int]]:
        """The events of ``data`` (read at ``offset``) with their link ids, ``size`` at a
        time, each list with the file offset just after its last line: where a replay
        resumes once the list is sent. A torn last line (no newline) is left out.

        Lazy, and on the event loop: a batch costs well under a millisecond. Parsing a
        whole file at once in a thread held the GIL ~60 ms for a full 16 MiB file, and
        the visitors' loop got it back only every switch interval (5 ms) meanwhile."""
        entries: list[Entry] = []
        start = yielded = 0
        while (end := data.find(b"\n", start)) >= 0:
            line = data[start:end]
            start = end + 1
            if not line:
                continue
            try:
                entries.append((link_id_of(line), line))
            except (ValueError, KeyError, TypeError):
                log.error("unreadable spooled event skipped: %r", line[:200])
                continue
            if len(entries) == size:
                yield entries, offset + start
                entries, yielded = [], start
        if start > yielded:
            yield entries, offset + start  # the rest, or only skipped lines: passed

    @staticmethod
    def advance(claimed: Path, offset: int) -> None:
        offset_file = claimed.with_suffix(".offset")
        tmp = offset_file.with_suffix(".tmp")
        tmp.write_text(str(offset))
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        tmp.replace(offset_file)

    @staticmethod
    def done(claimed: Path) -> None:
        claimed.unlink(missing_ok=True)
        claimed.with_suffix(".offset").unlink(missing_ok=True)

    @staticmethod
    def release(claimed: Path) -> None:
        """Gives an unfinished claim back (its offset stays), e.g. when Kafka fails again."""
        ready = claimed.with_name(f"{_stem(claimed)}.ready")
        with contextlib.suppress(FileNotFoundError):
            claimed.rename(ready)
            offset = claimed.with_suffix(".offset")
            if offset.exists():
                offset.rename(ready.with_suffix(".offset"))


def link_id_of(line: bytes) -> int:
    """The ``link_id`` of an encoded event: found directly in the text the encoder
    wrote (``"link_id":123,``), else (another writer's formatting) by parsing the JSON."""
    found = _LINK_ID.search(line)
    if found is not None:
        return int(found[1])
    return int(json.loads(line)["link_id"])


def _stem(path: Path) -> str:
    return path.name.split(".", 1)[0]


def _writer(path: Path) -> int:
    try:
        return int(_stem(path).rsplit("-", 1)[1])
    except (IndexError, ValueError):
        return 0


def _claimer(path: Path) -> int:
    try:
        return int(path.name.split(".")[1])
    except (IndexError, ValueError):
        return 0


def _alive(pid: int) -> bool:
    """Whether another live process owns a file of that pid. Our own pid counts as not
    alive: this process replays one file at a time and skips its current spool file
    itself, so a file of our pid found here is from an earlier process that had the same
    pid (a restarted container's PID 1, for example)."""
    if pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
