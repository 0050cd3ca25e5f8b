"""The configuration schema: the YAML file's models, validated once and frozen.

Owns the pydantic models (``extra="forbid"``) and the duration types; :func:`load_config` reads
the file through :mod:`~exporter.config.errors` (the bounded reader and the YAML loader). Every
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
    field_validator,
    model_validator,
)

from ..durations import (
    DURATION_PATTERN,
    MAX_DURATION_CHARS,
    bare_number_message,
    bound_message,
    format_duration,
    parse_duration,
)
from ..quoting import quoted
from .errors import ConfigError, KeyedError, load_yaml, problems_from, read_text_file

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
# Requests one poll may send in all (the first and its retries): a Datadog incident then
# costs at most this many calls per poll, whatever the interval.
DEFAULT_MAX_ATTEMPTS = 3


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


# What a duration key accepts in the file, as the JSON Schema states it: the text only; a
# bare number is refused by _to_seconds (as Prometheus refuses one). Change the two together;
# the test that the schema and the model agree (tests/unit/config/test_jsonschema.py) holds
# them to it.
DurationText = Annotated[str, Field(pattern=DURATION_PATTERN, max_length=MAX_DURATION_CHARS)]
_duration = BeforeValidator(_to_seconds, json_schema_input_type=DurationText)
# The bounds again for the schema: the reference shows them (the checks are _at_least's).
PositiveDuration = Annotated[
    float,
    _duration,
    _at_least(0.0, inclusive=False),
    Field(json_schema_extra={"exclusiveMinimum": 0}),
]
NonNegativeDuration = Annotated[
    float, _duration, _at_least(0.0), Field(json_schema_extra={"minimum": 0})
]
Interval = Annotated[float, _duration, _at_least(1.0), Field(json_schema_extra={"minimum": 1.0})]
QueryName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$")]
AccountName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")]
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]

# The account of a configuration without ``accounts:`` (the datadog: block and DD_* variables).
DEFAULT_ACCOUNT = "default"


class StrictModel(BaseModel):
    """Unknown keys are errors and values are frozen: every configuration model's base."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _http_url(value: str | None) -> str | None:
    if value is not None and not value.startswith(("http://", "https://")):
        raise ValueError("must start with http:// or https://")
    return value.rstrip("/") if value else value


ApiUrl = Annotated[
    str, AfterValidator(_http_url), Field(json_schema_extra={"pattern": "^https?://"})
]


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
        raise ValueError(f"unknown endpoint {quoted(name)} (one of {', '.join(endpoints)})")
    return name


EndpointName = Annotated[str, AfterValidator(_known_endpoint)]


class RateLimitExpectation(StrictModel):
    """A rate limit you expect (Datadog publishes none; it only sends X-RateLimit-* headers).

    Only ``--config.check`` uses it, to compare a configuration's cost with the limit; at run
    time the exporter goes by the headers.
    """

    limit: int = Field(ge=1, description="Requests allowed per period.")
    period: PositiveDuration = Field(description="Length of the rate-limit period.")


class DatadogSettings(StrictModel):
    """Where the API lives and how long one request may take."""

    site: Site | None = Field(
        default=None,
        description="The Datadog site whose API to call (default: $DD_SITE, else "
        "datadoghq.com). $DD_API_URL and api_url take precedence.",
    )
    api_url: ApiUrl | None = Field(
        default=None,
        description="The API's base URL, instead of the site's (a proxy, a simulator); "
        "starts with http:// or https://. $DD_API_URL takes precedence.",
    )
    timeout: PositiveDuration = Field(
        default=30.0, description="How long one request may take, reading the answer included."
    )
    # A runaway body must not eat memory.
    max_response_size: int = Field(
        default=64 * 1024 * 1024,
        ge=1024,
        description="Answers larger than this many bytes (64 MiB by default) are abandoned "
        "while reading.",
    )
    # One setting for every account: the egress is the machine's, not an account's.
    ca_file: CaBundle | None = Field(
        default=None,
        description="A PEM file of CA certificates to trust for Datadog traffic besides the "
        "system's (a TLS-inspecting egress proxy); checked at start-up. For every account.",
    )
    # Per endpoint: the keys are the endpoints of Config's query sections.
    rate_limits: dict[EndpointName, RateLimitExpectation] = Field(
        default_factory=dict,
        description="The rate limit you expect per endpoint. Only --config.check uses it, to "
        "compare the configuration's API calls with it; at run time the exporter goes by "
        "Datadog's X-RateLimit-* headers.",
    )
    max_attempts: int = Field(
        default=DEFAULT_MAX_ATTEMPTS,
        ge=1,
        le=10,
        description=(
            "Requests one poll may send in all, the first included: a 5xx, timeout or "
            "connection error is retried (after Retry-After when Datadog sends one, else a "
            "jittered backoff) until this many were sent or the next poll is due, whatever "
            "the query's interval. A 429 counts as an attempt; a 401, 403 or other 4xx is "
            "never retried. 1 turns retries off."
        ),
    )


class AccountSettings(StrictModel):
    """One Datadog organisation: where its API lives and where its two keys come from.

    Each key comes from a file (re-read when it changes, like a mounted Secret) or from a
    named environment variable. ``timeout`` and ``max_response_size`` default to the
    ``datadog:`` block's.
    """

    # One of each pair of key sources is required (checked by Config; stated in the schema).
    model_config = ConfigDict(
        json_schema_extra={
            "allOf": [
                {"oneOf": [{"required": [f"{key}_file"]}, {"required": [f"{key}_env"]}]}
                for key in ("api_key", "app_key")
            ]
        }
    )

    name: AccountName = Field(
        description="The account's name: its `account` label, and what a query's `account` "
        "names. Unique."
    )
    site: Site | None = Field(
        default=None,
        description="The Datadog site of this organisation (default: datadoghq.com; "
        "$DD_SITE does not apply to accounts).",
    )
    api_url: ApiUrl | None = Field(
        default=None,
        description="This organisation's API base URL, instead of the site's; starts with "
        "http:// or https://.",
    )
    api_key_file: Path | None = Field(
        default=None,
        description="A file holding the API key, re-read when it changes (a mounted Secret). "
        "This or api_key_env.",
    )
    app_key_file: Path | None = Field(
        default=None,
        description="A file holding the application key, re-read when it changes. "
        "This or app_key_env.",
    )
    api_key_env: EnvName | None = Field(
        default=None,
        description="The environment variable holding the API key. This or api_key_file.",
    )
    app_key_env: EnvName | None = Field(
        default=None,
        description="The environment variable holding the application key. This or app_key_file.",
    )
    timeout: PositiveDuration | None = Field(
        default=None, description="As datadog.timeout, for this account (default: that)."
    )
    max_response_size: int | None = Field(
        default=None,
        ge=1024,
        description="As datadog.max_response_size, for this account (default: that).",
    )


INTERVAL_DESCRIPTION = "How often to poll (at least 1s; below 30s a warning is logged)."


class PolledQuery(StrictModel):
    """What every polled query has: a name, a schedule and a staleness bound.

    Each subclass is the model of one section of the file (a ``list[...]`` field of
    :class:`Config` named ``section``) and names the Datadog endpoint it polls, which is also
    its ``datadog.rate_limits`` key.
    """

    section: ClassVar[str]
    endpoint: ClassVar[str]

    name: QueryName = Field(
        description="The query's name, unique within its section: the `query` label of its "
        "series and self-metrics."
    )
    # See Config.account_of for the default.
    account: AccountName | None = Field(
        default=None,
        description="The account (Datadog organisation) to ask; required when accounts: "
        "lists several, else the only one.",
    )
    interval: Interval = Field(default=60.0, description=INTERVAL_DESCRIPTION)
    # Then they go, so dashboards do not show frozen numbers forever.
    stale_after: PositiveDuration | None = Field(
        default=None,
        description="How long the last good series stay on /metrics once polls fail or stop "
        "coming (default: 3 intervals, at least 5m).",
    )
    max_series: int = Field(
        default=DEFAULT_MAX_SERIES,
        ge=1,
        description="Cardinality guard: rows that would take the query past this many series "
        "are dropped (the first, Datadog's biggest, are kept), counted in "
        "datadog_exporter_dropped_rows_total and logged.",
    )

    @property
    def effective_stale_after(self) -> float:
        """``stale_after`` in seconds with its default applied (3 intervals, at least 5m)."""
        if self.stale_after is not None:
            return self.stale_after
        return max(3 * self.interval, 300.0)


class TimeWindowQuery(PolledQuery):
    """A query over a time window ending ``delay`` before now: its answers can be asked for
    a past window too (``from``/``to``), which is what the backfill fetches."""

    window: PositiveDuration = Field(
        default=300.0,
        description="The time the answer covers, [now - delay - window, now - delay]; values "
        "are totals over it.",
    )
    delay: NonNegativeDuration = Field(
        default=0.0, description="Ingestion lag to skip: the window ends this long before now."
    )


class WindowedQuery(TimeWindowQuery):
    """A CNM aggregate query (connections and DNS): a window, group_by, filters and a limit."""

    group_by: list[str] = Field(
        default_factory=list,
        max_length=10,
        description="Datadog fields to group by, each becoming a label (dots become "
        "underscores); none: one total row.",
    )
    tags: list[str] = Field(
        default_factory=list, description="Tags to filter by, sent comma-joined."
    )
    query: str | None = Field(
        default=None, description="A filter in Datadog's search syntax; wins over tags."
    )
    limit: int = Field(
        default=100, ge=1, le=7500, description="Rows to ask for (Datadog sends the biggest first)."
    )

    @field_validator("group_by")
    @classmethod
    def _distinct_fields(cls, fields: list[str]) -> list[str]:
        for field in fields:
            if not field or "," in field:
                raise ValueError(f"invalid field {quoted(field)}: must be non-empty without commas")
        if len(set(fields)) != len(fields):
            raise ValueError("fields must not repeat")
        return fields

    @field_validator("tags")
    @classmethod
    def _tags_without_commas(cls, tags: list[str]) -> list[str]:
        for tag in tags:
            if not tag or "," in tag:
                raise ValueError(f"invalid tag {quoted(tag)}: tags are sent comma-joined")
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
        default_factory=lambda: ["network.dns_query"],
        min_length=1,
        max_length=10,
        description=f"Datadog fields to group by, each becoming a label; "
        f"{DNS_SERVER_UNGROUPED} is sent but is a switch, not a label.",
    )

    @property
    def label_fields(self) -> list[str]:
        return [field for field in self.group_by if field != DNS_SERVER_UNGROUPED]


# The categories Datadog documents for an insight (its ``type``); the endpoint is a preview,
# so others are accepted too (a name of letters, digits, - and _).
NETWORK_HEALTH_CATEGORIES = ("dns", "tcp", "tls-cert", "security-group")
CategoryName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_-]+$")]


class NetworkHealthQuery(TimeWindowQuery):
    """One ``GET /api/v2/network-health-insights`` query (a preview endpoint)."""

    section = "network_health"
    endpoint = "network_health"

    window: PositiveDuration = Field(
        default=300.0,
        description="The time the insights cover, [now - delay - window, now - delay]; "
        "failures, requests and traffic are totals over it. 5m as the CNM collectors' and as "
        "the shipped alerts are measured with (Datadog's own default, 15m, keeps a 3-minute "
        "blip in the window longer than their `for: 10m`).",
    )
    categories: list[CategoryName] = Field(
        default_factory=list,
        description="Insight categories to export (Datadog's type: dns, tcp, tls-cert, "
        "security-group); empty: every category. The endpoint has no filter, so the others "
        "are fetched and left out.",
    )
    certificate_id_label: bool = Field(
        default=False,
        description="Put the certificate's id (an ARN) on the certificate series too; off, "
        "it is only on datadog_network_health_certificate_info (one series per certificate).",
    )

    @field_validator("categories")
    @classmethod
    def _distinct_categories(cls, categories: list[str]) -> list[str]:
        if len(set(categories)) != len(categories):
            raise ValueError("categories must not repeat")
        return categories


class CasesQuery(PolledQuery):
    """One ``POST /api/v2/cases/aggregate`` query."""

    section = "cases"
    endpoint = "cases"

    group_by: list[str] = Field(
        min_length=1,
        description="Case fields to group by (the request's group_by.groups); several make one "
        "label named after them joined with _.",
    )
    query_filter: str = Field(
        default="", description="A Case Management search; empty: every case."
    )
    limit: int = Field(
        default=100, ge=1, le=1000, description="Groups to ask for (the request's group_by.limit)."
    )

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

    # The name may be left out (see below): the schema must not require it either.
    model_config = ConfigDict(
        json_schema_extra=lambda schema: schema.__setitem__(
            "required", [key for key in schema.get("required", []) if key != "name"]
        )
    )

    name: QueryName = Field(
        description="The query's name: the `query` label of its self-metrics (its series are "
        "labelled `entity`). Default: the entity."
    )
    entity: Annotated[str, Field(max_length=100, pattern=ENTITY_PATTERN)] = Field(
        description="The RUM Audience Management entity; unique per account."
    )
    interval: Interval = Field(default=300.0, description=INTERVAL_DESCRIPTION)

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


class Config(StrictModel):
    """The whole configuration file.

    Every ``list[<PolledQuery subclass>]`` field is a section of queries; the checks below
    and :meth:`all_queries` find them from the fields (see :func:`query_sections`), so none
    can be left out. The collector registry (``exporter.collectors.registry``) refuses to
    load unless it has exactly one entry per section.
    """

    model_config = ConfigDict(json_schema_extra=lambda schema, model: _some_query_schema(schema))

    datadog: DatadogSettings = Field(
        default_factory=DatadogSettings,
        description="Where the API lives and how long a request may take (with accounts:, "
        "the defaults of every account).",
    )
    accounts: list[AccountSettings] = Field(
        default_factory=list,
        description="Several Datadog organisations, each with its own keys; without it, one "
        "account named default uses $DD_API_KEY and $DD_APP_KEY.",
    )
    connections: list[ConnectionsQuery] = Field(
        default_factory=list, description="Cloud Network Monitoring connections queries."
    )
    dns: list[DnsQuery] = Field(
        default_factory=list, description="Cloud Network Monitoring DNS queries."
    )
    cases: list[CasesQuery] = Field(
        default_factory=list, description="Case Management aggregate queries."
    )
    audience: list[AudienceQuery] = Field(
        default_factory=list, description="RUM Audience Management connection listings."
    )
    network_health: list[NetworkHealthQuery] = Field(
        default_factory=list,
        description="Network Health Insights queries (Cloud Network Monitoring; a preview "
        "endpoint, subject to change). Absent by default.",
    )

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
                    raise KeyedError(loc, f"unknown account {quoted(query.account)} ({known})")
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
    def account_label(self) -> bool:
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


def _some_query_schema(schema: dict[str, Any]) -> None:
    """The JSON Schema's form of Config._some_query: one section holds a query at least."""
    schema["anyOf"] = [
        {"required": [section], "properties": {section: {"minItems": 1}}}
        for section in query_sections(Config)
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
            raise KeyedError((section, index, key), f"duplicate {key} {quoted(value)}")
        seen.add(value)


def parse_config(text: str, source: str = "configuration") -> Config:
    """Parse and validate YAML text; raise ConfigError naming every bad key."""
    try:
        raw = load_yaml(text)
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
