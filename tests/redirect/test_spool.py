"""The disk spool (services/redirect/spool.py): append, seal, claim, resume, takeover of
dead writers' files, the link ids read back off the event loop, torn and unreadable
lines, and the fsync interval."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.redirect import spool as spool_module
from services.redirect.spool import Spool, link_id_of


def _read(claimed: Path) -> tuple[list[tuple[int, bytes]], list[int]]:
    """Every event left in ``claimed``, and the resume offset after each."""
    batches = list(Spool.batches(*Spool.load(claimed), size=1))
    return [entry for entries, _ in batches for entry in entries], [
        end for entries, end in batches if entries]


def _event(link_id: int, n: int) -> bytes:
    return b'{"schema_version":1,"event_id":"e%d","link_id":%d,"path":"p"}' % (n, link_id)


def test_spool_append_claim_resume_and_done(tmp_path: Path) -> None:
    one, two, three = _event(7, 1), _event(8, 2), _event(9, 3)
    spool = Spool(tmp_path)
    spool.append([one, two])
    spool.append([three])
    assert spool.claim() is None  # the writer's open file is not replayable yet
    spool.seal()
    claimed = spool.claim()
    assert claimed is not None
    entries, ends = _read(claimed)
    assert entries == [(7, one), (8, two), (9, three)]
    assert ends == [len(one) + 1, len(one) + len(two) + 2, len(one) + len(two) + len(three) + 3]
    Spool.advance(claimed, ends[0])
    Spool.release(claimed)  # interrupted: the offset stays with the file
    again = spool.claim()
    assert again is not None
    assert _read(again) == ([(8, two), (9, three)], ends[1:])
    Spool.done(again)
    assert not spool.pending() and not list(tmp_path.iterdir())


def test_spool_takes_over_files_of_dead_processes(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    dead = tmp_path / f"{1:020d}-999999999.spool"
    dead.write_bytes(_event(1, 1) + b"\n" + _event(1, 2)[:20])  # killed mid-write: torn
    stale = tmp_path / f"{2:020d}-5.999999999.replaying"
    stale.write_bytes(_event(3, 3) + b"\n")
    mine = tmp_path / f"{3:020d}-{os.getpid()}.spool"  # an earlier process with our pid
    mine.write_bytes(_event(4, 4) + b"\n")
    real_alive = spool_module._alive
    monkeypatch.setattr(spool_module, "_alive",
                        lambda pid: pid not in (5, 999999999) and real_alive(pid))
    spool = Spool(tmp_path)
    first = spool.claim()
    assert first is not None and _read(first)[0] == [(1, _event(1, 1))]
    Spool.done(first)
    second = spool.claim()
    assert second is not None and _read(second)[0] == [(3, _event(3, 3))]
    Spool.done(second)
    third = spool.claim()
    assert third is not None and _read(third)[0] == [(4, _event(4, 4))]


def test_claim_left_by_an_interrupted_replay_is_taken_again_by_the_same_process(
        tmp_path: Path) -> None:
    """A replay cancelled mid-file (at shutdown) leaves its ``.replaying`` claim and offset
    behind. Our own pid counts as not alive, so the next replay of this process takes
    the claim again and resumes after the offset, as another process would."""
    one, two = _event(1, 1), _event(2, 2)
    spool = Spool(tmp_path)
    spool.append([one, two])
    spool.seal()
    claimed = spool.claim()
    assert claimed is not None
    _, ends = _read(claimed)
    Spool.advance(claimed, ends[0])  # the first event was acknowledged, then cancelled
    again = Spool(tmp_path).claim()
    assert again == claimed
    assert _read(again) == ([(2, two)], ends[1:])


def test_unreadable_line_is_skipped_and_resume_offsets_stay_exact(tmp_path: Path) -> None:
    good, bad, last = _event(5, 1), b"not json", _event(6, 2)
    path = tmp_path / f"{1:020d}-999999999.ready"
    path.write_bytes(good + b"\n" + bad + b"\n" + last + b"\n")
    claimed = Spool(tmp_path).claim()
    assert claimed is not None
    entries, ends = _read(claimed)
    assert entries == [(5, good), (6, last)]
    assert ends == [len(good) + 1, len(good) + len(bad) + len(last) + 3]
    Spool.advance(claimed, ends[0])
    assert _read(claimed) == ([(6, last)], ends[1:])  # resumes after the bad line


def test_link_id_read_without_a_json_parse_and_with_one() -> None:
    assert link_id_of(_event(123, 1)) == 123
    assert link_id_of(b'{"link_id":42}') == 42
    # Another writer's formatting (spaces): the JSON parse.
    assert link_id_of(b'{"event_id": "x", "link_id": 77}') == 77
    # The key text inside a string value is escaped, so it cannot be mistaken for it.
    assert link_id_of(b'{"path":"\\"link_id\\":9,","link_id":10}') == 10
    with pytest.raises(KeyError):
        link_id_of(b'{"n":1}')


def test_fsync_at_most_once_per_interval_and_on_seal(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def counting_fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    spool = Spool(tmp_path, fsync_interval=3600)
    spool.append([_event(1, 1)])  # the first write of a process syncs (nothing synced yet)
    for n in range(2, 50):
        spool.append([_event(1, n)])
    assert len(synced) == 1 and spool.sync_due is False  # written, not synced: within 1 h
    spool.seal()
    assert len(synced) == 2  # sealing syncs what is unsynced
    (ready,) = tmp_path.iterdir()
    assert ready.read_bytes().count(b"\n") == 49

    due = Spool(tmp_path, fsync_interval=0)
    due.append([_event(1, 1)])
    assert not due.sync_due  # synced by the append itself
    assert len(synced) == 3


def test_failed_write_leaves_whole_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spool = Spool(tmp_path)
    spool.append([_event(1, 1)])
    real_write = os.write
    calls = 0

    def short_then_full(fd: int, data: bytes | memoryview) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            return real_write(fd, bytes(data[:10]))  # a short write, then the disk is full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", short_then_full)
    with pytest.raises(OSError):
        spool.append([_event(1, 2)])
    monkeypatch.setattr(os, "write", real_write)
    spool.append([_event(1, 3)])
    spool.seal()
    claimed = spool.claim()
    assert claimed is not None
    assert _read(claimed)[0] == [(1, _event(1, 1)), (1, _event(1, 3))]


def test_batches_cut_at_the_size_and_pass_skipped_lines() -> None:
    lines = [_event(n, n) for n in range(5)]
    data = b"".join(line + b"\n" for line in lines[:4]) + b"garbage\n" + lines[4][:9]
    batches = list(Spool.batches(data, 100, 2))
    assert [entries for entries, _ in batches] == [
        [(0, lines[0]), (1, lines[1])], [(2, lines[2]), (3, lines[3])], []]
    # The last batch is only the unreadable line: its offset still moves past it, and
    # never into the torn line that ends the file.
    assert [end for _, end in batches] == [
        100 + sum(len(x) + 1 for x in lines[:2]), 100 + sum(len(x) + 1 for x in lines[:4]),
        100 + sum(len(x) + 1 for x in lines[:4]) + len(b"garbage\n")]


@given(st.lists(st.integers(0, 10**12), max_size=30), st.integers(1, 7), st.integers(0, 10**6))
def test_batches_give_every_event_once_in_order(ids: list[int], size: int, offset: int) -> None:
    lines = [_event(link_id, n) for n, link_id in enumerate(ids)]
    data = b"".join(line + b"\n" for line in lines)
    batches = list(Spool.batches(data, offset, size))
    expected = list(zip(ids, lines, strict=True))
    assert [entry for entries, _ in batches for entry in entries] == expected
    assert all(0 < len(entries) <= size for entries, _ in batches)
    ends = [end for _, end in batches]
    assert ends == sorted(set(ends)) and ends[-1:] == ([offset + len(data)] if ids else [])
