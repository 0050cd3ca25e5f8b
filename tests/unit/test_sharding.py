"""Rendezvous sharding: one owner per query, minimal movement on resize, index discovery."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.sharding import (
    Shard,
    ShardError,
    assignment,
    index_from_pod_name,
    owner,
    resolve_shard,
    shard_weight,
)

COLLECTORS = ("connections", "dns", "cases", "audience")


def generated_queries(count: int) -> list[tuple[str, str, str]]:
    """Queries named the way users name them: a few accounts, four collectors, numbered names."""
    accounts = ("default", "eu", "us", "apac")
    return [
        (accounts[i % 4], COLLECTORS[(i // 4) % 4], f"svc_{i:04d}.by-team") for i in range(count)
    ]


def binomial_bounds(n: int, p: float, sigmas: float = 4.5) -> tuple[float, float]:
    mean = n * p
    spread = sigmas * math.sqrt(n * p * (1 - p))
    return mean - spread, mean + spread


def test_every_query_is_owned_by_exactly_one_of_the_shards() -> None:
    queries = generated_queries(300)
    owners = [[s for s in range(3) if Shard(s, 3).owns(q)] for q in queries]
    assert all(len(found) == 1 for found in owners)
    # ... and the three replicas together poll every query once.
    selected = [q for s in range(3) for q in Shard(s, 3).select(queries, lambda q: q)]
    assert sorted(selected) == sorted(queries)


def test_shards_get_a_fair_share_of_the_queries() -> None:
    queries = generated_queries(400)
    low, high = binomial_bounds(len(queries), 1 / 3)
    for shard, owned in assignment(queries, 3).items():
        assert low <= len(owned) <= high, (shard, len(owned))


def test_growing_from_three_to_four_shards_moves_about_a_quarter_and_only_to_the_new_one() -> None:
    queries = generated_queries(400)
    before = {q: owner(q, 3) for q in queries}
    after = {q: owner(q, 4) for q in queries}
    moved = [q for q in queries if before[q] != after[q]]
    low, high = binomial_bounds(len(queries), 1 / 4)
    assert low <= len(moved) <= high, len(moved)
    # A query that moves goes to the new shard; none moves between two old shards.
    assert {after[q] for q in moved} == {3}


def test_shrinking_moves_only_the_removed_shards_queries() -> None:
    queries = generated_queries(300)
    for q in queries:
        if owner(q, 4) != 3:
            assert owner(q, 3) == owner(q, 4)


@given(
    st.lists(st.text(min_size=1, max_size=20), min_size=3, max_size=3).map(tuple),
    st.integers(min_value=1, max_value=40),
)
def test_rendezvous_property_holds_for_any_name_and_count(
    key: tuple[str, str, str], count: int
) -> None:
    old, new = owner(key, count), owner(key, count + 1)
    assert new in (old, count)


def test_one_shard_owns_everything() -> None:
    assert all(Shard(0, 1).owns(q) for q in generated_queries(50))


def test_weights_are_stable_across_processes() -> None:
    """Two replicas are two interpreters with different hash seeds: they must agree."""
    key = ("eu", "connections", "svc_to_svc")
    code = (
        "from exporter.sharding import shard_weight;"
        "print(shard_weight(('eu', 'connections', 'svc_to_svc'), 2))"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed},
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert outputs == {str(shard_weight(key, 2))}


def test_key_fields_do_not_blur_into_each_other() -> None:
    assert shard_weight(("a", "bc", "d"), 0) != shard_weight(("ab", "c", "d"), 0)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("datadog-cnm-exporter-0", 0),
        ("datadog-cnm-exporter-12", 12),
        ("exporter-2\n", 2),
        ("datadog-cnm-exporter-7d9f8c6b5-x2k4q", None),
        ("exporter", None),
        ("", None),
    ],
)
def test_index_comes_from_a_statefulset_pod_name(name: str, expected: int | None) -> None:
    assert index_from_pod_name(name) == expected


def test_flags_win_over_the_environment() -> None:
    env = {"EXPORTER_SHARD_INDEX": "1", "EXPORTER_SHARD_COUNT": "4", "HOSTNAME": "x-3"}
    assert resolve_shard(2, 3, env)[0] == Shard(2, 3)


def test_environment_variables_give_index_and_count() -> None:
    shard, source = resolve_shard(
        None, None, {"EXPORTER_SHARD_INDEX": "1", "EXPORTER_SHARD_COUNT": "4"}
    )
    assert shard == Shard(1, 4) and source == "EXPORTER_SHARD_INDEX"


def test_pod_name_gives_the_index_when_none_is_set() -> None:
    env = {"EXPORTER_SHARD_COUNT": "3", "POD_NAME": "datadog-cnm-exporter-2", "HOSTNAME": "h-0"}
    shard, source = resolve_shard(None, None, env)
    assert shard == Shard(2, 3)
    assert "datadog-cnm-exporter-2" in source
    assert resolve_shard(None, 3, {"HOSTNAME": "exporter-1"})[0] == Shard(1, 3)


def test_unsharded_by_default_even_inside_a_statefulset() -> None:
    assert resolve_shard(None, None, {"HOSTNAME": "exporter-4"})[0] == Shard(0, 1)


@pytest.mark.parametrize(
    ("index", "count", "env", "fragment"),
    [
        (None, 3, {"HOSTNAME": "exporter-7d9f8c6b5-x2k4q"}, "no shard index was given"),
        (3, 3, {}, "between 0 and 2"),
        (None, 3, {"HOSTNAME": "exporter-5"}, "between 0 and 2"),
        (-1, 2, {}, "between 0 and 1"),
        (0, 0, {}, "between 1 and"),
        (None, None, {"EXPORTER_SHARD_COUNT": "three"}, "EXPORTER_SHARD_COUNT must be a whole"),
        (None, 2, {"EXPORTER_SHARD_INDEX": "1.5"}, "EXPORTER_SHARD_INDEX must be a whole"),
    ],
)
def test_bad_shard_settings_are_clear_errors(
    index: int | None, count: int | None, env: dict[str, str], fragment: str
) -> None:
    with pytest.raises(ShardError, match=fragment):
        resolve_shard(index, count, env)
