"""The local disk spool: where click events wait while Kafka cannot take them.

Append-only files of newline-separated JSON events in one directory. Each writer
(process) appends to its own file, ``{time_ns}-{pid}.spool``, fsyncing once per batch; a
file is closed (renamed to ``.ready``) when it grows past a size or when its writer
stops, and only ready files are replayed. Replaying claims a file by renaming it to
``.replaying`` (atomic, so two workers never replay one file), sends it in order, records
how far it got in a ``.offset`` sidecar after every acknowledged batch, and deletes it
at the end. A worker that dies mid-replay leaves the claim and its offset; the next
replayer takes the claim over when that pid is gone, and resumes after the offset, so
no event is sent twice by the spool (and event ids let the consumer catch any double).

Files are named by creation time, so replay follows the order events were spooled.
All methods block (disk I/O) and are called through ``asyncio.to_thread``.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

_MAX_FILE_BYTES = 16 * 1024 * 1024


class Spool:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._current: Path | None = None
        self._size = 0

    def _ensure_dir(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

    def append(self, lines: list[bytes]) -> None:
        """Appends the events and fsyncs; raises OSError (disk full) to the caller."""
        self._ensure_dir()
        if self._current is None:
            self._current = self.directory / f"{time.time_ns():020d}-{os.getpid()}.spool"
            self._size = 0
        data = b"".join(line + b"\n" for line in lines)
        fd = os.open(self._current, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        self._size += len(data)
        if self._size >= _MAX_FILE_BYTES:
            self.seal()

    def seal(self) -> None:
        """Makes the current file replayable; the next append starts a new file."""
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
    def read(claimed: Path) -> tuple[int, list[bytes]]:
        """(offset already sent, the lines after it)."""
        offset_file = claimed.with_suffix(".offset")
        offset = int(offset_file.read_text()) if offset_file.exists() else 0
        with claimed.open("rb") as handle:
            handle.seek(offset)
            data = handle.read()
        # A torn last line (killed mid-write) is incomplete JSON: drop it.
        lines = data.split(b"\n")
        return offset, [line for line in lines[:-1] if line]

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
