"""The configuration schema: the YAML file's models, validated once and frozen.

Owns the pydantic models (``extra="forbid"``), the duration types and reading the file; every
failure becomes a :class:`~exporter.config.errors.ConfigError` naming the offending key path
(``connections[1].limit``). Nothing here performs network I/O.
"""

from __future__ import annotations

import functools
import logging
import re
import ssl
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, get_args, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from ..durations import bare_number_message, bound_message, format_duration, parse_duration
from .errors import ConfigError, KeyedError, problems_from, read_text_file

log = logging.getLogger(__name__)

Site = Literal[
    "datadoghq.com",
    "us3.datadoghq.com",
    "us5.datadoghq.com",
    "ap1.datadoghq.com",
    "ap2.datadoghq.com",
    "uk1.datadoghq.com",
    "datadoghq.eu",
    "ddog-gov.com",
    "us2.ddog-gov.com",
]
SITES: tuple[str, ...] = get_args(Site)

# Polling faster than this spends API budget quickly; allowed, but worth a warning.
COSTLY_INTERVAL_SECONDS = 30.0
# One query at the API's row limit yields 7,500 x 17 = 127,500 connection series.
DEFAULT_MAX_SERIES = 200_000


# parse_config validates with this context: durations the user wrote need a unit. Python
# callers (tests, the demo) may pass float seconds, which are what the fields hold.
FILE_CONTEXT: dict[str, bool] = {"from_file": True}


def _to_seconds(value: Any, info: ValidationInfo) -> Any:
    if isinstance(value, str):
        return parse_duration(value)
    if isinstance(value, bool):
        raise ValueError("a duration must be a string such as 30s or 5m")
    if isinstance(value, int | float) and (info.context or {}).get("from_file"):
        raise ValueError(bare_number_message(value))
    return value


def _at_least(bound: float, *, inclusive: bool = True) -> AfterValidator:
    """A lower bound whose message names its unit (``must be >= 1s``), unlike pydantic's."""

    def check(seconds: float) -> float:
        if seconds < bound or (not inclusive and seconds == bound):
            raise ValueError(bound_message(">=" if inclusive else ">", bound))
        return seconds

    return AfterValidator(check)


# How a duration looks in the file (the JSON Schema docs are generated from these models).
_DURATION_SCHEMA = WithJsonSchema(
    {
        "type": "string",
        "pattern": r"^([0-9]+(\.[0-9]+)?(ms|s|m|h|d|w))+$",
        "description": "a duration with a unit, as in Prometheus: 500ms, 30s, 5m, 1h30m",
    }
)
PositiveDuration = Annotated[
    float, BeforeValidator(_to_seconds), _at_least(0.0, inclusive=False), _DURATION_SCHEMA
]
NonNegativeDuration = Annotated[
    float, BeforeValidator(_to_seconds), _at_least(0.0), _DURATION_SCHEMA
]
Interval = Annotated[float, BeforeValidator(_to_seconds), _at_least(1.0), _DURATION_SCHEMA]
QueryName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$")]
AccountName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")]
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]

# The account of a configuration without ``accounts:`` (the datadog: block and DD_* variables).
DEFAULT_ACCOUNT = "default"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _http_url(value: str | None) -> str | None:
    if value is not None and not value.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")
    return value.rstrip("/") if value else value


ApiUrl = Annotated[str, AfterValidator(_http_url)]


def _load_cas(context: ssl.SSLContext, path: Path) -> ssl.SSLContext:
    """Add the CAs of the PEM file at ``path`` to ``context``; ValueError says why not."""
    try:
        context.load_verify_locations(cafile=str(path))
    except ssl.SSLError as exc:  # before OSError, its base class
        what = exc.reason or str(exc)
        raise ValueError(f"{str(path)!r} is not a PEM bundle of CA certificates ({what})") from None
    except OSError as exc:
        raise ValueError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
    return context


def load_ca_bundle(path: Path) -> ssl.SSLContext:
    """A client TLS context trusting the system's CAs plus those in the PEM file at ``path``
    (hostnames verified, as always); ValueError with a one-line reason when it cannot."""
    return _load_cas(ssl.create_default_context(), path)


def _usable_ca_bundle(path: Path) -> Path:
    # Only the file is checked here: a context without the system's CAs loads it faster.
    _load_cas(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), path)
    return path


CaBundle = Annotated[Path, AfterValidator(_usable_ca_bundle)]


def _known_endpoint(name: str) -> str:
    endpoints = query_endpoints(Config)  # looked up when validating: Config comes later
    if name not in endpoints:
        raise ValueError(f"unknown endpoint {name!r} (one of {', '.join(endpoints)})")
    return name


EndpointName = Annotated[str, AfterValidator(_known_endpoint)]


class RateLimitExpectation(_Strict):
    """A rate limit you expect (Datadog publishes none; it only sends X-RateLimit-* headers).

    Only ``--config.check`` uses it, to compare a configuration's cost with the limit; at run
    time the exporter goes by the headers.
    """

    limit: int = Field(ge=1)
    period: PositiveDuration


class DatadogSettings(_Strict):
    """Where the API lives and how long one request may take."""

    site: Site | None = None
    api_url: ApiUrl | None = None
    timeout: PositiveDuration = 30.0
    # Answers larger than this are abandoned while reading: a runaway body must not eat memory.
    max_response_size: int = Field(default=64 * 1024 * 1024, ge=1024)
    # Extra CAs to trust for Datadog traffic (a TLS-inspecting egress proxy), added to the
    # system's. One setting for every account: the egress is the machine's, not an account's.
    ca_file: CaBundle | None = None
    # Per endpoint: the keys are the endpoints of Config's query sections.
    rate_limits: dict[EndpointName, RateLimitExpectation] = Field(default_factory=dict)


class AccountSettings(_Strict):
    """One Datadog organisation: where its API lives and where its two keys come from.

    Each key comes from a file (re-read when it changes, like a mounted Secret) or from a
    named environment variable. ``timeout`` and ``max_response_size`` default to the
    ``datadog:`` block's.
    """

    name: AccountName
    site: Site | None = None
    api_url: ApiUrl | None = None
    api_key_file: Path | None = None
    app_key_file: Path | None = None
    api_key_env: EnvName | None = None
    app_key_env: EnvName | None = None
    timeout: PositiveDuration | None = None
    max_response_size: int | None = Field(default=None, ge=1024)


class PolledQuery(_Strict):
    """What every polled query has: a name, a schedule and a staleness bound.

    Each subclass is the model of one section of the file (a ``list[...]`` field of
    :class:`Config` named ``section``) and names the Datadog endpoint it polls, which is also
    its ``datadog.rate_limits`` key.
    """

    section: ClassVar[str]
    endpoint: ClassVar[str]

    name: QueryName
    # The account (Datadog organisation) to ask; see Config.account_of for the default.
    account: AccountName | None = None
    interval: Interval = 60.0
    # Last good series stay on /metrics this long after polls start failing; then they go,
    # so dashboards do not show frozen numbers forever. Default: 3 intervals, at least 5m.
    stale_after: PositiveDuration | None = None
    # Cardinality guard: rows that would take the query past this many series are dropped
    # (the first rows, Datadog's biggest, are kept), counted and logged on every poll.
    max_series: int = Field(default=DEFAULT_MAX_SERIES, ge=1)

    @property
    def keep_stale_seconds(self) -> float:
        if self.stale_after is not None:
            return self.stale_after
        return max(3 * self.interval, 300.0)


class WindowedQuery(PolledQuery):
    """A query over a time window ending ``delay`` before now (CNM connections and DNS)."""

    group_by: list[str] = Field(default_factory=list, max_length=10)
    tags: list[str] = Field(default_factory=list)
    query: str | None = None
    limit: int = Field(default=100, ge=1, le=7500)
    window: PositiveDuration = 300.0
    delay: NonNegativeDuration = 0.0

    @field_validator("group_by")
    @classmethod
    def _distinct_fields(cls, fields: list[str]) -> list[str]:
        for field in fields:
            if not field or "," in field:
                raise ValueError(f"invalid field {field!r}: must be non-empty without commas")
        if len(set(fields)) != len(fields):
            raise ValueError("fields must not repeat")
        return fields

    @field_validator("tags")
    @classmethod
    def _tags_without_commas(cls, tags: list[str]) -> list[str]:
        for tag in tags:
            if not tag or "," in tag:
                raise ValueError(f"invalid tag {tag!r}: tags are sent comma-joined")
        return tags


class ConnectionsQuery(WindowedQuery):
    """One ``GET /api/v2/network/connections/aggregate`` query."""

    section = "connections"
    endpoint = "connections"


# A DNS row carries the same fields it was grouped by; this one is a switch, not a field.
DNS_SERVER_UNGROUPED = "server_ungrouped"


class DnsQuery(WindowedQuery):
    """One ``GET /api/v2/network/dns/aggregate`` query."""

    section = "dns"
    endpoint = "dns"

    # Datadog groups by network.dns_query when no group_by is sent; saying so keeps the
    # exported labels in step with what the answer is grouped by.
    group_by: list[str] = Field(
        default_factory=lambda: ["network.dns_query"], min_length=1, max_length=10
    )

    @property
    def label_fields(self) -> list[str]:
        return [field for field in self.group_by if field != DNS_SERVER_UNGROUPED]


class CasesQuery(PolledQuery):
    """One ``POST /api/v2/cases/aggregate`` query."""

    section = "cases"
    endpoint = "cases"

    group_by: list[str] = Field(min_length=1)
    query_filter: str = ""
    limit: int = Field(default=100, ge=1, le=1000)

    @field_validator("group_by")
    @classmethod
    def _distinct_fields(cls, fields: list[str]) -> list[str]:
        if not all(fields):
            raise ValueError("fields must be non-empty")
        if len(set(fields)) != len(fields):
            raise ValueError("fields must not repeat")
        return fields


# A path segment: letters, digits, _ and - keep it from escaping the path ("..", "/").
ENTITY_PATTERN = r"^[A-Za-z0-9_-]+$"


class AudienceQuery(PolledQuery):
    """One ``GET /api/v2/product-analytics/{entity}/mapping/connections`` query."""

    section = "audience"
    endpoint = "audience"

    entity: Annotated[str, Field(max_length=100, pattern=ENTITY_PATTERN)]
    interval: Interval = 300.0

    @model_validator(mode="before")
    @classmethod
    def _name_defaults_to_entity(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("name") is None and "entity" in data:
            entity = data["entity"]
            # A bad entity is reported on its own key; the name it would have given is not
            # a second problem worth showing, so stand in a valid one.
            usable = isinstance(entity, str) and re.fullmatch(ENTITY_PATTERN, entity)
            return {**data, "name": entity if usable else "entity"}
        return data


class Config(_Strict):
    """The whole configuration file.

    Every ``list[<PolledQuery subclass>]`` field is a section of queries; the checks below
    and :meth:`all_queries` find them from the fields (see :func:`query_sections`), so none
    can be left out. The collector registry (``exporter.collectors.registry``) refuses to
    load unless it has exactly one entry per section.
    """

    datadog: DatadogSettings = Field(default_factory=DatadogSettings)
    accounts: list[AccountSettings] = Field(default_factory=list)
    connections: list[ConnectionsQuery] = Field(default_factory=list)
    dns: list[DnsQuery] = Field(default_factory=list)
    cases: list[CasesQuery] = Field(default_factory=list)
    audience: list[AudienceQuery] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> Config:
        for section in query_sections(type(self)):
            _require_unique(section, "name", [q.name for q in getattr(self, section)])
        # Two queries of one entity would export the same series; other accounts may share it.
        seen: set[tuple[str, str]] = set()
        for index, query in enumerate(self.audience):
            key = (self.account_of(query), query.entity)
            if key in seen:
                raise KeyedError(
                    ("audience", index, "entity"), f"duplicate entity {query.entity!r}"
                )
            seen.add(key)
        return self

    @model_validator(mode="after")
    def _accounts_are_complete(self) -> Config:
        seen: set[str] = set()
        for index, account in enumerate(self.accounts):
            if account.name in seen:
                raise KeyedError(("accounts", index, "name"), f"duplicate name {account.name!r}")
            seen.add(account.name)
            for key in ("api_key", "app_key"):
                given = [
                    f"{key}_{kind}"
                    for kind in ("file", "env")
                    if getattr(account, f"{key}_{kind}") is not None
                ]
                if len(given) != 1:
                    problem = "give only one of" if given else "required: one of"
                    raise KeyedError(
                        ("accounts", index, f"{key}_file"),
                        f"{problem} {key}_file or {key}_env",
                    )
        if self.accounts:
            # With accounts, the datadog: block only holds defaults; a site there would be
            # silently ignored, so it is refused.
            for key in ("site", "api_url"):
                if getattr(self.datadog, key) is not None:
                    raise KeyedError(("datadog", key), f"set {key} per account (accounts[].{key})")
        return self

    @model_validator(mode="after")
    def _queries_name_known_accounts(self) -> Config:
        names = self.account_names
        for section in query_sections(type(self)):
            for index, query in enumerate(getattr(self, section)):
                loc = (section, index, "account")
                if query.account is None:
                    if len(names) > 1:
                        raise KeyedError(
                            loc,
                            f"required when several accounts are configured "
                            f"(one of {', '.join(names)})",
                        )
                elif query.account not in names:
                    known = (
                        f"one of {', '.join(names)}"
                        if self.accounts
                        else f"no accounts: section, so only {DEFAULT_ACCOUNT!r}"
                    )
                    raise KeyedError(loc, f"unknown account {query.account!r} ({known})")
        return self

    # Last: a file with other faults names those first.
    @model_validator(mode="after")
    def _some_query(self) -> Config:
        # An exporter with nothing to poll serves only its own metrics and looks healthy.
        if not self.all_queries():
            raise KeyedError(
                (),
                "no queries: configure at least one query in "
                + ", ".join(query_sections(type(self))),
            )
        return self

    @property
    def account_names(self) -> list[str]:
        return [a.name for a in self.accounts] or [DEFAULT_ACCOUNT]

    @property
    def labels_accounts(self) -> bool:
        """True when data series carry an ``account`` label (``accounts:`` is configured)."""
        return bool(self.accounts)

    def account_of(self, query: PolledQuery) -> str:
        """The account a query polls: its own, else the only one there is."""
        return query.account or self.account_names[0]

    def all_queries(self) -> list[tuple[str, PolledQuery]]:
        """Every configured query with its collector name, section by section in file order."""
        return [
            (section, q) for section in query_sections(type(self)) for q in getattr(self, section)
        ]


@functools.cache
def query_sections(model: type[BaseModel]) -> dict[str, type[PolledQuery]]:
    """The query sections of a configuration model: field name -> query model, in order."""
    sections: dict[str, type[PolledQuery]] = {}
    for name, field in model.model_fields.items():
        if get_origin(field.annotation) is list:
            (item,) = get_args(field.annotation)
            if isinstance(item, type) and issubclass(item, PolledQuery):
                if item.section != name:
                    raise TypeError(
                        f"{model.__name__}.{name} holds {item.__name__}, whose "
                        f"section is {item.section!r}"
                    )
                sections[name] = item
    return sections


@functools.cache
def query_endpoints(model: type[BaseModel]) -> tuple[str, ...]:
    """The endpoints the model's query sections poll (the ``datadog.rate_limits`` keys)."""
    return tuple(dict.fromkeys(query.endpoint for query in query_sections(model).values()))


def _require_unique(section: str, key: str, values: list[str]) -> None:
    seen: set[str] = set()
    for index, value in enumerate(values):
        if value in seen:
            raise KeyedError((section, index, key), f"duplicate {key} {value!r}")
        seen.add(value)


def parse_config(text: str, source: str = "configuration") -> Config:
    """Parse and validate YAML text; raise ConfigError naming every bad key."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError([(where, f"invalid YAML: {problem}")], source) from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([("", "the top level must be a mapping of sections")], source)
    try:
        return Config.model_validate(raw, context=FILE_CONTEXT)
    except ValidationError as exc:
        raise ConfigError(problems_from(exc, raw, Config), source) from None


def load_config(path: Path) -> Config:
    """Read and validate the configuration file at ``path``."""
    return parse_config(read_text_file(path, "configuration file"), str(path))


def costly_interval_warnings(config: Config) -> list[str]:
    """One line per query polling faster than is cheap."""
    return [
        f"{collector} query {query.name!r} polls every {format_duration(query.interval)}: "
        f"below {format_duration(COSTLY_INTERVAL_SECONDS)} this spends API budget quickly"
        for collector, query in config.all_queries()
        if query.interval < COSTLY_INTERVAL_SECONDS
    ]


def short_window_warnings(config: Config) -> list[str]:
    """One line per query whose window is shorter than its interval: the time between the
    end of one window and the start of the next is never looked at."""
    return [
        f"{collector} query {query.name!r}: window {format_duration(query.window)} is shorter "
        f"than the interval {format_duration(query.interval)}; "
        f"{format_duration(query.interval - query.window)} of every interval is never counted"
        for collector, query in config.all_queries()
        if isinstance(query, WindowedQuery) and query.window < query.interval
    ]
