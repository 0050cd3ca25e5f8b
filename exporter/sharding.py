"""Which replica polls which query: rendezvous (highest random weight) hashing.

A query's shard key is ``(account, collector, name)``. Every shard index gets a weight for the
key from a keyed cryptographic hash (stable across processes, Python versions and
machines, unlike ``hash()``); the shard with the highest weight owns the query. Going from N
to N+1 shards therefore moves only the queries the new shard wins (about 1/(N+1) of them) and
never moves a query between two shards that existed before.

Also owns where a replica learns its place: flags, ``EXPORTER_SHARD_INDEX`` /
``EXPORTER_SHARD_COUNT``, or a StatefulSet pod name ending in ``-N`` (``POD_NAME``, then
``HOSTNAME``). Pure: the environment comes in as a mapping.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

# What a query is hashed by: (account, collector, query name). Not the snapshot's QueryKey
# (collector, name), which already tells queries apart: the account stays in so that the
# replica each query lands on never changes across versions.
ShardKey = tuple[str, str, str]
T = TypeVar("T")

INDEX_ENV = "EXPORTER_SHARD_INDEX"
COUNT_ENV = "EXPORTER_SHARD_COUNT"
POD_NAME_ENVS = ("POD_NAME", "HOSTNAME")
# More shards than this is a typo, not a deployment: every query would be polled nowhere.
MAX_SHARDS = 1000

_POD_ORDINAL = re.compile(r"-(\d+)$")


class ShardError(ValueError):
    """The shard index or count is missing, not a number, or out of range."""


def shard_weight(key: ShardKey, shard: int) -> int:
    """The rendezvous weight of ``shard`` for one query: 64 bits of BLAKE2b."""
    # NUL cannot appear in names (accounts and queries are validated), so fields cannot blur.
    material = "\0".join((*key, str(shard))).encode("utf-8")
    return int.from_bytes(hashlib.blake2b(material, digest_size=8).digest(), "big")


def owner(key: ShardKey, count: int) -> int:
    """The shard index in ``range(count)`` that owns the query (ties go to the lower index)."""
    if count < 1:
        raise ShardError("the shard count must be at least 1")
    return max(range(count), key=lambda shard: (shard_weight(key, shard), -shard))


@dataclass(frozen=True)
class Shard:
    """This replica's place: index ``index`` of ``count`` (0 of 1 when not sharded)."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_SHARDS:
            raise ShardError(
                f"the shard count must be between 1 and {MAX_SHARDS}, not {self.count}"
            )
        if not 0 <= self.index < self.count:
            raise ShardError(
                f"the shard index must be between 0 and {self.count - 1} "
                f"(the count is {self.count}), not {self.index}"
            )

    @property
    def sharded(self) -> bool:
        return self.count > 1

    def owns(self, key: ShardKey) -> bool:
        return self.count == 1 or owner(key, self.count) == self.index

    def select(self, items: Iterable[T], key_of: Callable[[T], ShardKey]) -> list[T]:
        """The items this shard owns, in their original order."""
        return [item for item in items if self.owns(key_of(item))]


def assignment(keys: Sequence[ShardKey], count: int) -> dict[int, list[ShardKey]]:
    """Every shard index (also those that own nothing) with the keys it owns."""
    owned: dict[int, list[ShardKey]] = {shard: [] for shard in range(count)}
    for key in keys:
        owned[owner(key, count)].append(key)
    return owned


def index_from_pod_name(name: str) -> int | None:
    """``datadog-cnm-exporter-2`` -> 2; None if the name does not end in ``-N``."""
    match = _POD_ORDINAL.search(name.strip())
    return int(match.group(1)) if match else None


def _parse_int(text: str, what: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ShardError(f"{what} must be a whole number, not {text!r}") from None


def resolve_count(count: int | None, environ: Mapping[str, str]) -> int | None:
    """The shard count from the flag, else the environment; None when neither gives one."""
    if count is None and environ.get(COUNT_ENV, "").strip():
        count = _parse_int(environ[COUNT_ENV], COUNT_ENV)
    if count is not None:
        Shard(0, count)  # validates the range
    return count


def resolve_shard(
    index: int | None, count: int | None, environ: Mapping[str, str]
) -> tuple[Shard, str]:
    """This replica's shard from flags, then the environment, then the pod name.

    Returns the shard and where the index came from (for the start-up log line). A count
    above 1 with no index anywhere is an error: guessing 0 would make two replicas poll the
    same queries while another third of the queries goes unpolled.
    """
    count = resolve_count(count, environ) or 1
    source = "--shard.index"
    if index is None and environ.get(INDEX_ENV, "").strip():
        index, source = _parse_int(environ[INDEX_ENV], INDEX_ENV), INDEX_ENV
    if index is None and count > 1:
        for variable in POD_NAME_ENVS:
            pod_name = environ.get(variable, "")
            ordinal = index_from_pod_name(pod_name)
            if ordinal is not None:
                index, source = ordinal, f"{variable}={pod_name.strip()}"
                break
        else:
            raise ShardError(
                f"the shard count is {count} but no shard index was given: pass --shard.index, "
                f"set {INDEX_ENV}, or run as a StatefulSet pod whose name ends in -N "
                f"({' or '.join(POD_NAME_ENVS)})"
            )
    if index is None:
        index, source = 0, "default"
    return Shard(index, count), source
