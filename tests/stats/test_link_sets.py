"""Link-id bitmaps of the filter rollups: a union's size is the distinct links."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.stats import link_sets

_IDS = st.lists(st.integers(min_value=1, max_value=2**20), min_size=1, max_size=60)


def test_bits_stand_for_links_from_the_first() -> None:
    first, bits = link_sets.encode([12, 3, 10, 3])
    assert first == 3
    assert int.from_bytes(bits, "little") == 0b10_1000_0001
    assert len(bits) == 2  # links 3..12: ten bits
    with pytest.raises(ValueError):
        link_sets.encode([])


@given(st.lists(_IDS, max_size=8), st.lists(st.integers(min_value=1, max_value=2**20)))
def test_union_counts_each_link_once(sets: list[list[int]], ids: list[int]) -> None:
    # Ids close together, as a domain's are, and a million apart (bitmaps of 128 KiB).
    bitmaps = [link_sets.encode(s) for s in sets]
    expected = set(ids).union(*sets)
    assert link_sets.count_union(bitmaps, ids) == len(expected)
