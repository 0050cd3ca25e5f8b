"""The spool and journal of a backfill: what is fetched, what is written, what is left.

One sqlite database (``DIR/.backfill/journal.sqlite``) holds the run's resolved arguments,
every finished window, and the samples of days not yet written. A window's samples and its
"done" mark are committed in one transaction, so a run killed at any moment (SIGKILL, a pod
restart) leaves each window either completely recorded or not at all; a rerun fetches only
the windows not recorded. A day's file is built from the spool once all its windows are
recorded: written to ``NAME.partial``, flushed to disk, renamed (so a file with its final
name is always complete), then the day is marked written and its samples deleted. sqlite
sorts on disk, so memory stays flat however long the range.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .openmetrics import FamilyWriter

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS queries (
    id INTEGER PRIMARY KEY, collector TEXT NOT NULL, name TEXT NOT NULL,
    fingerprint TEXT NOT NULL, UNIQUE (collector, name));
CREATE TABLE IF NOT EXISTS families (name TEXT PRIMARY KEY, header BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY, query INTEGER NOT NULL, family TEXT NOT NULL, labels BLOB NOT NULL,
    UNIQUE (query, family, labels));
CREATE INDEX IF NOT EXISTS series_by_family ON series (family, labels);
CREATE TABLE IF NOT EXISTS samples (
    series INTEGER NOT NULL, t INTEGER NOT NULL, value BLOB NOT NULL,
    PRIMARY KEY (t, series)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS windows (
    query INTEGER NOT NULL, t INTEGER NOT NULL, PRIMARY KEY (query, t)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS days (
    query INTEGER NOT NULL, day TEXT NOT NULL, PRIMARY KEY (query, day)) WITHOUT ROWID;
"""
# One window's samples: (family name, label text, value text).
Samples = Sequence[tuple[str, bytes, bytes]]


class JournalMismatch(Exception):
    """The directory holds a run with other arguments or another query definition."""


@dataclass(frozen=True, slots=True)
class QueryRef:
    id: int
    collector: str
    name: str


class Journal:
    """One run's journal; use from one thread at a time (the runner keeps it on one)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        # WAL with NORMAL sync survives a killed process (only power loss may drop the last
        # commits, which are then fetched again).
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        self._series: dict[tuple[int, str, bytes], int] = {}
        self._headers: dict[str, bytes] | None = None

    def close(self) -> None:
        self.db.close()

    # -- the run and its queries --------------------------------------------------------------

    def bind_run(self, parameters: Mapping[str, object]) -> dict[str, object]:
        """Store the run's parameters on first use; later, return the stored ones if the
        arguments match (relative times stay resolved as at the first run), else refuse."""
        row = self.db.execute("SELECT value FROM meta WHERE key = 'run'").fetchone()
        if row is None:
            self.db.execute(
                "INSERT INTO meta VALUES ('run', ?)", (json.dumps(parameters, sort_keys=True),)
            )
            return dict(parameters)
        stored: dict[str, object] = json.loads(row[0])
        arguments = {k: v for k, v in parameters.items() if k.startswith("arg_")}
        if {k: v for k, v in stored.items() if k.startswith("arg_")} != arguments:
            raise JournalMismatch(
                "this output directory holds a backfill started with other arguments ("
                + ", ".join(
                    f"{k[4:]}={v}" for k, v in sorted(stored.items()) if k.startswith("arg_")
                )
                + "); rerun with the same --start, --end, --step, --label and --family, or use "
                "another --output"
            )
        return stored

    def bind_query(self, collector: str, name: str, fingerprint: str) -> QueryRef:
        row = self.db.execute(
            "SELECT id, fingerprint FROM queries WHERE collector = ? AND name = ?",
            (collector, name),
        ).fetchone()
        if row is None:
            cursor = self.db.execute(
                "INSERT INTO queries (collector, name, fingerprint) VALUES (?, ?, ?)",
                (collector, name, fingerprint),
            )
            assert cursor.lastrowid is not None
            return QueryRef(cursor.lastrowid, collector, name)
        if row[1] != fingerprint:
            raise JournalMismatch(
                f"{collector} query {name!r} changed in the configuration since this backfill "
                "started; restore it or use another --output"
            )
        return QueryRef(row[0], collector, name)

    # -- windows --------------------------------------------------------------------------------

    def done(self, query: QueryRef) -> set[int]:
        rows = self.db.execute("SELECT t FROM windows WHERE query = ?", (query.id,))
        return {t for (t,) in rows}

    def record(
        self, query: QueryRef, t: int, samples: Samples, headers: Mapping[str, bytes]
    ) -> None:
        """A window's samples and its done mark, in one transaction."""
        try:
            self._record(query, t, samples, headers)
        except BaseException:
            # The rollback took this window's new series and families with it.
            self._series.clear()
            self._headers = None
            raise

    def _record(
        self, query: QueryRef, t: int, samples: Samples, headers: Mapping[str, bytes]
    ) -> None:
        with self._transaction():
            for family, header in headers.items():
                if self._headers is None:
                    self._load_headers()
                assert self._headers is not None
                if family not in self._headers:
                    self.db.execute(
                        "INSERT OR IGNORE INTO families VALUES (?, ?)", (family, header)
                    )
                    self._headers[family] = header
            rows = [
                (self._series_id(query.id, f, labels), t, value) for f, labels, value in samples
            ]
            self.db.executemany("INSERT OR REPLACE INTO samples VALUES (?, ?, ?)", rows)
            self.db.execute("INSERT OR IGNORE INTO windows VALUES (?, ?)", (query.id, t))

    def _series_id(self, query: int, family: str, labels: bytes) -> int:
        key = (query, family, labels)
        found = self._series.get(key)
        if found is None:
            self.db.execute(
                "INSERT OR IGNORE INTO series (query, family, labels) VALUES (?, ?, ?)", key
            )
            (found,) = self.db.execute(
                "SELECT id FROM series WHERE query = ? AND family = ? AND labels = ?", key
            ).fetchone()
            self._series[key] = found
        return found

    def _load_headers(self) -> None:
        self._headers = dict(self.db.execute("SELECT name, header FROM families"))

    # -- days -----------------------------------------------------------------------------------

    def written(self, query: QueryRef) -> set[str]:
        return {d for (d,) in self.db.execute("SELECT day FROM days WHERE query = ?", (query.id,))}

    def forget_day(self, query: QueryRef, day: str, bounds: tuple[int, int]) -> None:
        """A written day whose file is gone: fetch it again."""
        with self._transaction():
            self.db.execute("DELETE FROM days WHERE query = ? AND day = ?", (query.id, day))
            self.db.execute(
                "DELETE FROM windows WHERE query = ? AND t >= ? AND t < ?", (query.id, *bounds)
            )

    def write_day(self, query: QueryRef, day: str, bounds: tuple[int, int], path: Path) -> int:
        """Write the day's file (complete or not at all), mark it, free its samples."""
        partial = path.with_name(path.name + ".partial")
        # Samples are stored in time order (each window appends); CROSS JOIN makes sqlite
        # read the day's range once and sort it (on disk when large), not per series.
        rows = self.db.execute(
            "SELECT s.family, s.labels, p.t, p.value FROM samples p "
            "CROSS JOIN series s ON p.series = s.id "
            "WHERE p.t >= ? AND p.t < ? AND s.query = ? ORDER BY s.family, s.labels, p.t",
            (*bounds, query.id),
        )
        with partial.open("wb", buffering=1 << 20) as out:
            samples = self._export(rows, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, path)
        with self._transaction():
            self.db.execute("INSERT OR IGNORE INTO days VALUES (?, ?)", (query.id, day))
            self.db.execute(
                "DELETE FROM samples WHERE t >= ? AND t < ? "
                "AND series IN (SELECT id FROM series WHERE query = ?)",
                (*bounds, query.id),
            )
        return samples

    def write_all(self, out: BinaryIO) -> int:
        """Every spooled sample of every query as one exposition (``--output -``)."""
        rows = self.db.execute(
            "SELECT s.family, s.labels, p.t, p.value FROM samples p "
            "CROSS JOIN series s ON p.series = s.id ORDER BY s.family, s.labels, p.t"
        )
        return self._export(rows, out)

    def _export(self, rows: Iterable[tuple[str, bytes, int, bytes]], out: BinaryIO) -> int:
        self._load_headers()
        assert self._headers is not None
        writer = FamilyWriter(out, self._headers)
        for family, labels, t, value in rows:
            writer.write(family, labels, t, value)
        writer.close()
        return writer.samples

    def vacuum(self) -> None:
        """Give the spool's space back once nothing is left in it."""
        self.db.execute("VACUUM")

    def _transaction(self) -> _Transaction:
        return _Transaction(self.db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")
