"""Keeps secrets out of everything glisk prints or logs.

PostgreSQL URLs are the only secrets glisk handles; their password is replaced with `***`
wherever a URL appears, whether in a message, a log record or an exception text.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

MASK = "***"

# scheme://user:password@host — the password is everything between the first ':' after the
# user name and the last '@' before the host (passwords may themselves contain '@' or ':').
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^:/?#@\s]*:)(?P<password>[^\s]*)@")
# libpq keyword/value strings: password=secret or password='se cret'
_KV_PASSWORD = re.compile(
    r"(?P<head>\bpassword\s*=\s*)(?P<password>'(?:[^'\\]|\\.)*'|[^\s]+)", re.I
)


def mask_url(url: str) -> str:
    """Return `url` with its password (if any) replaced by `***`."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo = f"{parts.username or ''}:{MASK}"
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}"))


def redact(text: str) -> str:
    """Mask every password-like fragment in free text (URLs and `password=` pairs)."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}@", text)
    return _KV_PASSWORD.sub(lambda m: f"{m['head']}{MASK}", text)
