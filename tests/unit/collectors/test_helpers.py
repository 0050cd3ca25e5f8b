"""The one rule every collector renders rows by: the first of each label set, then as many
leading rows as fit in max_series, the rest dropped and counted."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from exporter.collectors.helpers import keep_rows


def test_the_first_row_of_a_label_set_is_kept() -> None:
    kept = keep_rows(["a", "b", "a", "c", "b"], lambda _: 1, 100)
    assert (list(kept.indexes), kept.dropped, kept.everything) == ([0, 1, 3], 0, False)


def test_rows_are_kept_until_one_does_not_fit_and_distinct_rows_after_it_are_dropped() -> None:
    series = [2, 2, 1, 5, 1]
    kept = keep_rows(["a", "b", "c", "d", "e"], series.__getitem__, 6)
    # 2 + 2 + 1 fit; the 5 does not, and nothing after it is kept, even the 1 that would fit.
    assert (list(kept.indexes), kept.dropped) == ([0, 1, 2], 2)
    # A duplicate after the cut is not counted as dropped: it was never a row of its own.
    kept = keep_rows(["a", "b", "c", "d", "a"], series.__getitem__, 6)
    assert (list(kept.indexes), kept.dropped) == ([0, 1, 2], 1)


def test_an_answer_that_fits_whatever_its_rows_hold_is_not_counted() -> None:
    def fail(_: int) -> int:
        raise AssertionError("series counted although every row fits")

    kept = keep_rows(["a", "b"], fail, 8, most_per_row=4)
    assert (list(kept.indexes), kept.dropped, kept.everything) == ([0, 1], 0, True)


@given(
    rows=st.lists(st.tuples(st.sampled_from("abcdef"), st.integers(0, 4)), max_size=12),
    max_series=st.integers(0, 12),
)
def test_kept_rows_are_distinct_in_order_and_within_the_limit(
    rows: list[tuple[str, int]], max_series: int
) -> None:
    labels = [label for label, _ in rows]
    kept = keep_rows(labels, lambda index: rows[index][1], max_series)
    indexes = list(kept.indexes)
    assert indexes == sorted(indexes)
    assert len({labels[i] for i in indexes}) == len(indexes)
    assert sum(rows[i][1] for i in indexes) <= max_series
    assert len(indexes) + kept.dropped == len(set(labels))
