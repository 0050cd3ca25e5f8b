"""Durations as the configuration takes them and as --config.check and the landing page show
them: the documented forms parse, anything else is refused with the accepted forms named, and
what is printed reads back as the same duration, written the way a user would write it."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.durations import format_duration, parse_duration

UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PARTS = re.compile(r"(?:([1-9]\d*)h)?(?:([1-9]\d?)m)?(?:(\d\d?)(?:\.(\d{0,2}[1-9]))?s)?")


def canonical(text: str) -> bool:
    """What format_duration writes: below a second ``0s`` or ``Nms``; otherwise hours, minutes
    and seconds, each at most once, largest first, none of them zero, minutes and seconds
    below 60, the seconds with at most three decimals and no trailing zero."""
    if text == "0s" or re.fullmatch(r"[1-9]\d{0,2}ms", text):
        return True
    match = _PARTS.fullmatch(text)
    if match is None or not text:
        return False
    _, minutes, whole, fraction = match.groups()
    if minutes is not None and int(minutes) >= 60:
        return False
    if whole is not None and (int(whole) >= 60 or (int(whole) == 0 and fraction is None)):
        return False
    return not (whole == "0" and match.group(1) is None and minutes is None)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("500ms", 0.5),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("1.5h", 5400.0),
        ("1m30s500ms", 90.5),
        ("1d", 86400.0),
        ("2w", 1209600.0),
        ("0s", 0.0),
        (" 5m\n", 300.0),  # YAML block scalars keep a trailing newline
    ],
)
def test_documented_forms_parse_to_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text",
    ["", "5", "5x", "5M", "-1s", "+1s", "1.s", ".5s", "1h 30m", "1e3s", "1,5s", "s", "5 m", "∞s"],
)
def test_anything_else_is_refused_naming_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration") as error:
        parse_duration(text)
    assert repr(text) in str(error.value)
    assert "500ms, 30s, 5m, 1h, 1h30m" in str(error.value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0s"),
        (0.25, "250ms"),
        (1.5, "1.5s"),
        (60.0, "1m"),
        (90.0, "1m30s"),
        (3600.0, "1h"),
        (5400.0, "1h30m"),
        (3600.5, "1h0.5s"),
        (172800.0, "48h"),
        # Rounded to the millisecond first, so no unit overflows into "60s" or "1000ms".
        (0.9996, "1s"),
        (59.99999, "1m"),
        (119.99999, "2m"),
        (3599.9999, "1h"),
        (-90.0, "-1m30s"),  # an age across a clock step
    ],
)
def test_formatting_reads_as_a_user_would_write_it(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


milliseconds = st.integers(min_value=0, max_value=10**12)


@given(milliseconds)
def test_formatting_is_canonical_and_parses_back_to_the_same_duration(ms: int) -> None:
    seconds = ms / 1000
    text = format_duration(seconds)
    assert canonical(text), text
    assert parse_duration(text) == pytest.approx(seconds, rel=1e-12, abs=1e-9)
    assert format_duration(parse_duration(text)) == text


@given(st.floats(min_value=0, max_value=1e9, allow_nan=False))
def test_any_duration_formats_within_half_a_millisecond(seconds: float) -> None:
    text = format_duration(seconds)
    assert canonical(text), text
    assert parse_duration(text) == pytest.approx(seconds, abs=0.0005 + seconds * 1e-12)


@given(
    st.lists(
        st.tuples(
            st.one_of(
                st.integers(min_value=0, max_value=10**6).map(str),
                st.tuples(st.integers(0, 10**6), st.integers(0, 999)).map(
                    lambda n: f"{n[0]}.{n[1]:03d}"
                ),
            ),
            st.sampled_from(sorted(UNITS)),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_any_sequence_of_numbers_with_units_adds_up(parts: list[tuple[str, str]]) -> None:
    text = "".join(number + unit for number, unit in parts)
    expected = sum(float(number) * UNITS[unit] for number, unit in parts)
    assert parse_duration(text) == pytest.approx(expected, rel=1e-12)


def test_a_duration_too_large_for_a_number_is_refused() -> None:
    with pytest.raises(ValueError, match="too large"):
        parse_duration("9" * 400 + "s")


@given(st.from_regex(r"[0-9.]*", fullmatch=True))
def test_a_number_without_unit_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)
