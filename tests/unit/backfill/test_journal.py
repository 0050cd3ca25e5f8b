"""The backfill journal: windows recorded all or nothing, days written complete or not at all,
reruns bound to the first run's arguments."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.backfill.journal import Journal, JournalMismatch

DAY = ("2024-05-01", (1_714_521_600, 1_714_608_000))
T0 = 1_714_521_600
HEADERS = {"a": b"# TYPE a gauge\n", "b": b"# TYPE b gauge\n"}


def test_recorded_windows_survive_a_reopen(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    query = journal.bind_query("connections", "q", "fp")
    journal.record(query, T0, [("a", b'{x="1"}', b"1")], HEADERS)
    journal.close()
    again = Journal(tmp_path / "j.sqlite")
    assert again.done(again.bind_query("connections", "q", "fp")) == {T0}


def test_a_window_that_fails_while_recording_leaves_nothing_behind(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    query = journal.bind_query("connections", "q", "fp")

    def samples() -> Iterator[tuple[str, bytes, bytes]]:
        yield ("a", b'{x="1"}', b"1")
        raise RuntimeError("killed midway")

    with pytest.raises(RuntimeError):
        journal.record(query, T0, _Exploding(samples()), HEADERS)
    assert journal.done(query) == set()
    assert journal.db.execute("SELECT count(*) FROM samples").fetchone() == (0,)
    # What the failed window started (a new series) does not haunt the next one.
    journal.record(query, T0, [("b", b'{y="2"}', b"2"), ("a", b'{x="1"}', b"1")], HEADERS)
    journal.write_day(query, DAY[0], DAY[1], tmp_path / "d.om")
    assert (tmp_path / "d.om").read_bytes() == (
        b'# TYPE a gauge\na{x="1"} 1 1714521600\n# TYPE b gauge\nb{y="2"} 2 1714521600\n# EOF\n'
    )


class _Exploding(list):  # type: ignore[type-arg]
    """A sample list whose iteration fails after the first sample was inserted."""

    def __init__(self, items: Iterator[tuple[str, bytes, bytes]]) -> None:
        super().__init__()
        self.items = items

    def __iter__(self) -> Iterator[tuple[str, bytes, bytes]]:
        return self.items


def test_a_day_is_written_ordered_by_family_series_time_and_then_freed(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    query = journal.bind_query("dns", "q", "fp")
    for t in (T0 + 600, T0):  # recorded out of order
        journal.record(
            query,
            t,
            [("b", b'{x="2"}', b"5"), ("a", b'{x="9"}', b"7"), ("a", b'{x="1"}', b"3")],
            HEADERS,
        )
    path = tmp_path / "day.om"
    assert journal.write_day(query, DAY[0], DAY[1], path) == 6
    assert path.read_bytes() == (
        b"# TYPE a gauge\n"
        b'a{x="1"} 3 1714521600\na{x="1"} 3 1714522200\n'
        b'a{x="9"} 7 1714521600\na{x="9"} 7 1714522200\n'
        b"# TYPE b gauge\n"
        b'b{x="2"} 5 1714521600\nb{x="2"} 5 1714522200\n'
        b"# EOF\n"
    )
    assert not list(tmp_path.glob("*.partial"))
    assert journal.written(query) == {DAY[0]}
    assert journal.db.execute("SELECT count(*) FROM samples").fetchone() == (0,)


def test_a_rerun_gets_the_first_runs_resolved_times(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    first = journal.bind_run({"arg_start": "14d", "arg_end": "", "start": 100.0, "end": 900.0})
    later = journal.bind_run({"arg_start": "14d", "arg_end": "", "start": 160.0, "end": 960.0})
    assert first == later == {"arg_start": "14d", "arg_end": "", "start": 100.0, "end": 900.0}
    with pytest.raises(JournalMismatch, match=r"other arguments.*start=14d"):
        journal.bind_run({"arg_start": "7d", "arg_end": "", "start": 1.0, "end": 2.0})


def test_a_changed_query_is_refused(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    journal.bind_query("connections", "q", '{"window": 300}')
    journal.bind_query("dns", "q", '{"window": 600}')  # another collector's query of that name
    with pytest.raises(JournalMismatch, match="connections query 'q' changed"):
        journal.bind_query("connections", "q", '{"window": 600}')


def test_forgetting_a_day_makes_its_windows_pending_again(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    query = journal.bind_query("connections", "q", "fp")
    journal.record(query, T0, [("a", b'{x="1"}', b"1")], HEADERS)
    journal.record(query, T0 + 86400, [("a", b'{x="1"}', b"1")], HEADERS)
    journal.write_day(query, DAY[0], DAY[1], tmp_path / "d.om")
    journal.forget_day(query, DAY[0], DAY[1])
    assert journal.done(query) == {T0 + 86400}
    assert journal.written(query) == set()
