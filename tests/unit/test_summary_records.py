"""summary.json's per-image lists: records built from the run's data each time they are read."""

from __future__ import annotations

import pytest

from segqc.outputs.summary import Records

RECORDS = [{"name": f"img{i}.tif", "value": i * 0.25} for i in range(5)]


def records(*, length_known: bool) -> Records:
    # fresh dicts on every read, as summary.json's records are
    return Records(lambda: (dict(r) for r in RECORDS), len(RECORDS) if length_known else None)


@pytest.mark.parametrize("length_known", [True, False])
def test_records_read_like_the_list_they_stand_for(length_known):
    listed = records(length_known=length_known)
    assert len(listed) == 5
    assert bool(listed)
    assert list(listed) == RECORDS
    assert list(listed) == RECORDS  # a second read gives the same records
    assert listed == RECORDS
    assert listed != RECORDS[:4]
    assert listed != [*RECORDS[:4], {"name": "other.tif", "value": 1.0}]
    assert listed[0] == RECORDS[0]
    assert listed[-1] == RECORDS[4]
    assert listed[1:3] == RECORDS[1:3]
    assert [r["name"] for r in reversed(listed)] == [r["name"] for r in reversed(RECORDS)]
    with pytest.raises(IndexError):
        listed[5]
    with pytest.raises(IndexError):
        listed[-6]


def test_changing_a_record_that_was_read_changes_neither_the_records_nor_their_source():
    listed = records(length_known=True)
    first = listed[0]
    first["value"] = 99.0
    assert listed[0]["value"] == 0.0
    assert RECORDS[0]["value"] == 0.0


def test_no_records_read_as_an_empty_list():
    empty = Records(lambda: iter([]))
    assert len(empty) == 0
    assert not empty
    assert empty == []
    assert list(empty) == []
