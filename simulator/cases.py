"""Deterministic Case Management cases and the `/cases/aggregate` computation.

Pure, no I/O. How several `groups` fields come back is undocumented by
Datadog; `multi_group` selects one of the plausible shapes (see docs/simulator.md).
"""

from __future__ import annotations

import random
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from simulator.data import NA
from simulator.options import CasesMultiGroup
from simulator.query import Predicate

STATUSES = ("OPEN", "OPEN", "IN_PROGRESS", "CLOSED", "CLOSED", "CLOSED")
PRIORITIES = ("P1", "P2", "P3", "P3", "P4", "P5", "NOT_DEFINED")
PROJECTS = ("SEC", "OPS", "NET", 'Support "Tier 1"', "zürich-ß", "東京")
SERVICES = ("case-api", "checkout", "payments-db", "frontend", "auth")
TEAMS = ("networks", "payments", "storefront", "platform", "sre")
ASSIGNEES = ("alice@example.com", "bob@example.com", "chloé@example.com", NA)
ENVS = ("prod", "staging")
COMBINED_SEPARATOR = ","


@dataclass(frozen=True, slots=True)
class Case:
    key: str
    fields: dict[str, tuple[str, ...]]


def build_cases(seed: int, size: int) -> list[Case]:
    rng = random.Random(seed ^ 0xCA5E)
    cases = []
    for i in range(size):
        project = PROJECTS[i % len(PROJECTS)] if i < len(PROJECTS) else rng.choice(PROJECTS)
        fields: dict[str, tuple[str, ...]] = {
            "status": (rng.choice(STATUSES),),
            "priority": (rng.choice(PRIORITIES),),
            "project": (project,),
            "type": ("STANDARD",),
            "assignee": (rng.choice(ASSIGNEES),),
            "service": (rng.choice(SERVICES),),
            "team": (rng.choice(TEAMS),),
            "env": (rng.choice(ENVS),),
        }
        cases.append(Case(key=f"{project[:3].upper()}-{i + 1}", fields=fields))
    return cases


def _value(case: Case, field: str) -> str:
    values = case.fields.get(field)
    return values[0] if values else NA


def _top(counter: Counter[str], limit: int) -> list[dict[str, Any]]:
    ranked = sorted(counter.items(), key=lambda item: (-item[1], item[0]))
    return [{"group": group, "value": [count]} for group, count in ranked[:limit]]


def aggregate_cases(
    cases: Sequence[Case],
    *,
    predicate: Predicate,
    groups: Sequence[str],
    limit: int,
    multi_group: CasesMultiGroup,
    request_id: str,
) -> dict[str, Any]:
    """The full `/cases/aggregate` answer for already-validated inputs."""
    matched = [case for case in cases if predicate(case.fields)]
    out: list[dict[str, Any]] = []
    if len(groups) == 1 or (groups and multi_group == "first_field"):
        out = _top(Counter(_value(c, groups[0]) for c in matched), limit)
    elif groups and multi_group == "combined":
        out = _top(
            Counter(COMBINED_SEPARATOR.join(_value(c, g) for g in groups) for c in matched), limit
        )
    elif groups:  # facets: one block per field, like /cases/count's facet groups
        for field in groups:
            out.extend(_top(Counter(_value(c, field) for c in matched), limit))
        out = out[:limit]
    digest = zlib.crc32(request_id.encode())
    return {
        "data": {
            "id": f"agg-result-{digest:08x}",
            "type": "aggregate",
            "attributes": {"total": len(matched), "groups": out},
        }
    }
