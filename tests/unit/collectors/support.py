"""What the collector unit tests share: bodies no collector can use, and the fuzzing check."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

from exporter.collectors.protocol import DecodeError, QueryJob
from tests.helpers import parse_metrics, render_body, rendered_text

# Not JSON at all: every collector must turn these into a DecodeError.
UNPARSABLE_BODIES = [b"", b"not json", b"<html></html>", b'{"data": [']

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


def renders_or_fails_cleanly(job: QueryJob, document: Any) -> None:
    """Rendering ``document`` raises only DecodeError, or gives text that parses back."""
    try:
        rendered = render_body(job, json.dumps(document).encode())
    except DecodeError:
        return
    parse_metrics(rendered_text(rendered))
