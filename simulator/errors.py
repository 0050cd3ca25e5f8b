"""Datadog's error bodies, in every shape seen in real traffic (pure, no I/O)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from simulator.options import ErrorShape


class ErrorAnswer(Exception):
    """An error answer the simulated API gives (validation, not found, ...): an endpoint
    raises it, the app sends its body as Datadog would."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        shape: ErrorShape = "jsonapi",
    ) -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status = status
        self.title = title
        self.detail = detail
        self.shape: ErrorShape = shape

    def body(self) -> dict[str, Any]:
        return error_body(self.status, self.shape, title=self.title, detail=self.detail)


def reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _code_for(status: int, title: str) -> str:
    if status == 404:
        return "resource_not_found"
    return "_".join(title.lower().split()) or "error"


def error_body(
    status: int,
    shape: ErrorShape = "jsonapi",
    *,
    title: str | None = None,
    detail: str | None = None,
) -> dict[str, Any]:
    """Build one of the documented error shapes.

    - strings:            {"errors": ["Forbidden"]}
    - jsonapi:            {"errors": [{"status": "500", "title": ..., "detail": ...}]}
    - jsonapi_no_detail:  {"errors": [{"status": "500", "title": ...}]}
    - generic:            {"errors": [{"title": "Generic Error", "detail": ...}]}
    - code:               {"errors": [{"code": "resource_not_found", "title": ...}]}
    """
    title = title or reason(status)
    detail = detail or f"The simulated Datadog API answered {status} {reason(status)}."
    if shape == "strings":
        return {"errors": [title]}
    if shape == "jsonapi":
        return {"errors": [{"status": str(status), "title": title, "detail": detail}]}
    if shape == "jsonapi_no_detail":
        return {"errors": [{"status": str(status), "title": title}]}
    if shape == "generic":
        return {"errors": [{"title": "Generic Error", "detail": detail}]}
    return {"errors": [{"code": _code_for(status, title), "title": title}]}


def html_page(status: int) -> str:
    """The kind of page the edge (not the API) serves on some 403/429 answers."""
    phrase = reason(status)
    return (
        "<!DOCTYPE html>\n<html><head><title>"
        f"{status} {phrase}</title></head>\n<body><center><h1>{status} {phrase}</h1></center>\n"
        "<hr><center>simulated edge</center></body></html>\n"
    )
