"""The web view behind `glisk serve --dashboard`: the pipeline (`/`), a token's page
(`/tokens/ID`), search (`/tokens?id=ID`) and the stylesheet and refresh script (`/static/…`).
Read-only: GET and HEAD only.

The health paths never come here (`app.HealthApp` answers them first, unauthenticated, as fast
as without the view). Pages read the database off the event loop, in a thread: the pipeline
through a `SharedCheck`, so that however many browsers poll, PostgreSQL sees at most about one
reading a second; token pages one at a time. With a password (GLISK_DASHBOARD_PASSWORD), every
path here asks for it by HTTP basic auth (any user name), compared in constant time.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable
from importlib.resources import files
from typing import Any
from urllib.parse import parse_qs

from glisk_cli.logging import logger
from glisk_cli.pipeline import token_id_in
from glisk_cli.serve.check import Outcome, SharedCheck, describe_error, in_daemon_thread
from glisk_cli.serve.http import Request, Response, make_response
from glisk_cli.serve.pages import Pages

PipelineSource = Callable[[], dict[str, Any]]  # the `glisk top --json` document
TokenSource = Callable[[int], "dict[str, Any] | None"]  # a token's page; None: no such token

REFRESH_S = 3.0  # how often an open page refreshes itself
READ_TIMEOUT_S = 5.0  # a page whose reading takes longer says so instead
HTML = "text/html; charset=utf-8"
# The pages load only their own stylesheet and script; nothing inline runs, whatever a value holds.
_SECURITY = (
    "Content-Security-Policy: default-src 'none'; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'\r\n"
    "X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n"
)
_STATIC = {"/static/style.css": "text/css; charset=utf-8", "/static/refresh.js": "text/javascript"}


def _static(path: str, content_type: str) -> Response:
    body = files("glisk_cli.serve").joinpath(path.lstrip("/")).read_bytes()
    return make_response(200, "OK", body, content_type, _SECURITY)


class Dashboard:
    """Answers the web view's paths for `HealthApp`, which hands it every path not its own."""

    def __init__(
        self,
        pipeline: PipelineSource,
        token: TokenSource,
        *,
        password: str | None,
        refresh_seconds: float = REFRESH_S,
    ) -> None:
        self.pages = Pages(refresh_seconds)
        self._pipeline = SharedCheck(
            "dashboard-pipeline",
            pipeline,
            self._on_pipeline,
            timeout=READ_TIMEOUT_S,
            max_age=1.0,
            refresh_after=1.0,
        )
        self._read_token = token
        self._token_turn: asyncio.Lock | None = None  # made on the server's event loop
        self._digest = None if password is None else hashlib.sha256(password.encode()).digest()
        self._failing: str | None = None
        self._static = {path: _static(path, kind) for path, kind in _STATIC.items()}
        self._unauthorized = self._html(
            401,
            "Unauthorized",
            self._message("Password required", "This dashboard asks for its password."),
            'WWW-Authenticate: Basic realm="glisk dashboard", charset="UTF-8"\r\n',
        )

    @property
    def guarded(self) -> bool:
        """Whether every path here asks for the password."""
        return self._digest is not None

    # -- what HealthApp asks -----------------------------------------------------------------

    def answer_now(self, request: Request) -> Response | None:
        """The answer when no database reading is needed; None for the pages that need one."""
        if request.method not in (b"GET", b"HEAD"):
            return self._html(
                405,
                "Method Not Allowed",
                self._message("Read-only", "Only GET and HEAD."),
                "Allow: GET, HEAD\r\n",
            )
        if not self._authorized(request):
            return self._unauthorized
        path = request.path.decode("latin-1")
        if path in self._static:
            return self._static[path]
        if path == "/tokens":  # the search form
            wanted = _query(request).get("id", "").strip()
            if token_id_in(wanted) is None:
                text = "A token id is a whole number, such as 42."
                return self._html(400, "Bad Request", self._message("Not a token id", text))
            return make_response(
                303, "See Other", b"", HTML, f"Location: /tokens/{int(wanted)}\r\n"
            )
        if path == "/" or path.startswith("/tokens/"):
            return None
        return self._html(404, "Not Found", self._message("Not found", "No such page."))

    async def answer(self, request: Request) -> Response:
        fragment = _query(request).get("part") == "main"
        path = request.path.decode("latin-1")
        if path == "/":
            return await self._pipeline_page(fragment)
        token_id = token_id_in(path.removeprefix("/tokens/"))
        if token_id is None:
            return self._html(404, "Not Found", self._message("Not found", "No such token id."))
        return await self._token_page(token_id, fragment)

    # -- pages -------------------------------------------------------------------------------

    async def _pipeline_page(self, fragment: bool) -> Response:
        outcome = await self._pipeline.get()
        error = None if outcome.ok else outcome.error
        body = self.pages.render(
            "pipeline.html", "pipeline", fragment=fragment, doc=outcome.value, error=error
        )
        return self._html(200 if outcome.ok else 503, "OK" if outcome.ok else "Unavailable", body)

    async def _token_page(self, token_id: int, fragment: bool) -> Response:
        if self._token_turn is None:
            self._token_turn = asyncio.Lock()
        async with self._token_turn:  # one token reading at a time, whoever asks
            reading = in_daemon_thread("glisk-dashboard-token", lambda: self._read_token(token_id))
            try:
                page = await asyncio.wait_for(asyncio.shield(reading), READ_TIMEOUT_S)
            except TimeoutError:
                text = f"The database did not answer within {READ_TIMEOUT_S:g} s."
                return self._html(503, "Unavailable", self._message("No answer", text, fragment))
            except Exception as exc:
                text = f"Could not read token {token_id}: {describe_error(exc)}"
                logger.debug(f"dashboard: {text}")  # an outage is logged once, by the health check
                return self._html(503, "Unavailable", self._message("Unavailable", text, fragment))
        if page is None:
            text = f"There is no token {token_id}."
            return self._html(404, "Not Found", self._message("No such token", text, fragment))
        title = f"token {token_id}"
        return self._html(
            200, "OK", self.pages.render("token.html", title, fragment=fragment, page=page)
        )

    def _on_pipeline(self, outcome: Outcome[dict[str, Any]]) -> None:
        """Log a failing reading once, and its recovery, not every refresh."""
        error = None if outcome.ok else outcome.error
        if error != self._failing:
            if error is not None:
                logger.warning(f"dashboard: could not read the pipeline: {error}")
            else:
                logger.info("dashboard: the pipeline reads again")
            self._failing = error

    # -- pieces ------------------------------------------------------------------------------

    def _authorized(self, request: Request) -> bool:
        if self._digest is None:
            return True
        scheme, _, encoded = (request.authorization or b"").partition(b" ")
        if scheme.lower() != b"basic":
            return False
        try:
            credentials = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        _user, colon, password = credentials.partition(b":")
        # Digests of equal length, compared in constant time: the time says nothing of the
        # password, not even its length.
        given = hashlib.sha256(password).digest()
        return bool(colon) and hmac.compare_digest(given, self._digest)

    def _message(self, heading: str, text: str, fragment: bool = False) -> bytes:
        return self.pages.render(
            "message.html", heading, fragment=fragment, heading=heading, text=text
        )

    @staticmethod
    def _html(code: int, reason: str, body: bytes, extra: str = "") -> Response:
        return make_response(code, reason, body, HTML, _SECURITY + extra)


def _query(request: Request) -> dict[str, str]:
    """The query's parameters, the last of each name."""
    parsed = parse_qs(request.query.decode("latin-1"), keep_blank_values=True)
    return {name: values[-1] for name, values in parsed.items()}
