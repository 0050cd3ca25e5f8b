"""The rendered data every scrape serves: one immutable snapshot per query, one body for all.

Two sides, each small:

- :mod:`.store`, what publishes: :class:`SnapshotStore` keeps every query's current
  :class:`QuerySnapshot` and, on each ``publish``/``drop``/``set_order``, files its
  compressed pieces under their family names and swaps in a new :class:`Body`. Only the
  scheduler's writer calls it, one change at a time; :mod:`.filing` keeps each family name's
  chunks (blocks and a CRC tree) for it.
- :mod:`.body`, what scrapes read: a :class:`Body` is immutable; ``plain`` and ``gzip`` copy
  its bytes into writes, never rendering, compressing or locking.

Their tunables are one value, :class:`SnapshotTuning` (:mod:`.tuning`). The invariants both
sides keep are listed in docs/architecture.md ("The snapshot store").
"""

from .body import Body, Payload
from .store import QueryKey, QuerySnapshot, SnapshotStore, prepare_snapshot
from .tuning import DEFAULT_TUNING, SnapshotTuning

__all__ = [
    "DEFAULT_TUNING",
    "Body",
    "Payload",
    "QueryKey",
    "QuerySnapshot",
    "SnapshotStore",
    "SnapshotTuning",
    "prepare_snapshot",
]
