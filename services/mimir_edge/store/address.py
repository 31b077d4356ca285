"""REDIS_URL as text: the checks it must pass, its credentials, and the one function that makes it
safe to log or show (`redact_url`). Imports no redis, so the CLI and the renderers can use it.

A password may come inside REDIS_URL (percent-encoded) or apart from it as REDIS_PASSWORD, which
then wins: the Helm charts pass it apart so that no character of it needs encoding.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit, urlunsplit

SCHEMES = ("redis", "rediss", "unix")
#: What a password (or a password= query value) is shown as.
REDACTED = "***"
_QUERY_PASSWORD = re.compile(r"(?i)([?&]password=)[^&#]*")


def redact_url(url: str) -> str:
    """`url` with the password in its userinfo (and any `password=` query value) replaced by ***.

    Works on text urlsplit would misread too: the userinfo ends at the last `@` of the URL, so a
    password with raw `@`, `/` or `:` in it is hidden whole, never half shown."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return _QUERY_PASSWORD.sub(rf"\g<1>{REDACTED}", url)
    at = rest.rfind("@")
    if at >= 0:
        user, colon, _ = rest[:at].partition(":")
        rest = (f"{user}:{REDACTED}" if colon else user) + rest[at:]
    return f"{scheme}://" + _QUERY_PASSWORD.sub(rf"\g<1>{REDACTED}", rest)


def check_url(url: str) -> None:
    """Raise ValueError (naming the URL redacted) unless `url` is a Redis URL redis-py and the
    lean client read the same way."""
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a port that is not a number
    except ValueError:
        # Not the parser's message: it quotes the part it choked on, which may be the password.
        raise ValueError(
            f"{shown!r} is not a URL (bad port); a password with / ? # or : goes in REDIS_PASSWORD"
        ) from None
    if parts.scheme not in SCHEMES:
        raise ValueError(f"{shown!r}: scheme must be redis://, rediss:// (TLS) or unix://")
    if "@" in parts.path + parts.query + parts.fragment:
        # A raw /, ? or # in the password: every URL parser takes the rest of it for the host.
        raise ValueError(
            f"{shown!r}: the password is not percent-encoded; give it as REDIS_PASSWORD instead of in the URL"
        )
    if _QUERY_PASSWORD.search(url):
        # redis-py would let it override REDIS_PASSWORD, and the lean client would ignore it.
        raise ValueError(f"{shown!r}: ?password= is not read; give the password as REDIS_PASSWORD")


def url_credentials(url: str) -> tuple[str | None, str | None]:
    """(username, password) written in `url`, percent-decoded; None where absent."""
    parts = urlsplit(url)
    return (
        unquote(parts.username) if parts.username else None,
        unquote(parts.password) if parts.password else None,
    )


def without_credentials(url: str) -> str:
    """`url` without its userinfo (credentials are passed to the clients apart from it)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
