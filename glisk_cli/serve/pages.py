"""The web view's HTML: Jinja2 templates (`templates/`) rendered with autoescaping on, so every
value from the database — a prompt, an error message, a worker's name — is text, never markup.

Every `{{ value }}` passes through `_text` first: times in UTC to the second, nothing as a dash,
documents as JSON. The filters say durations and counts as `glisk top` does.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from glisk_cli.documents import jsonable
from glisk_cli.durations import in_words, moment
from glisk_cli.redact import redact

NOTHING = "—"


def _text(value: Any) -> Any:
    if value is None:
        return NOTHING
    if isinstance(value, str | int | float):  # autoescaping follows
        return value
    if isinstance(value, datetime):
        return moment(value)
    if isinstance(value, Enum):
        return value.value
    return str(jsonable(value))


def _words(value: float | timedelta | None) -> str:
    """A duration as `3m 05s` (`glisk top`'s way), or a dash."""
    return NOTHING if value is None else in_words(value)


def _number(value: int | None) -> str:
    return NOTHING if value is None else f"{value:,}"


def _rate(per_minute: float | None) -> str:
    return NOTHING if per_minute is None else f"{per_minute:,.1f}"


def _json(value: Any) -> str:
    """A document in full (an error, a checkpoint), with any password in it masked."""
    return redact(json.dumps(jsonable(value), ensure_ascii=False, indent=2, sort_keys=True))


class Pages:
    """The templates, loaded once; `render` gives a page's bytes."""

    def __init__(self, refresh_seconds: float) -> None:
        self.refresh_seconds = refresh_seconds
        self.env = Environment(
            loader=PackageLoader("glisk_cli.serve", "templates"),
            autoescape=True,
            finalize=_text,
            undefined=StrictUndefined,  # a misspelt field fails the page, not shows as blank
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(words=_words, number=_number, rate=_rate, json=_json)

    def render(self, template: str, title: str, *, fragment: bool, **values: Any) -> bytes:
        """The page's `<main>` alone when `fragment` (what the page's refresh fetches), else the
        whole page around it: each page extends the layout it is given."""
        return (
            self.env.get_template(template)
            .render(
                values,
                layout="fragment.html" if fragment else "layout.html",
                title=title,
                refresh=f"{self.refresh_seconds:g}",
            )
            .encode()
        )
