"""What may leave the process: text and URLs with credentials masked.

One place for every path that writes text a user did not choose to publish — log lines,
trace attributes and span events, /agent/info, start-up messages. `redact` masks anything
shaped like a credential in free text (an upstream's error message quoting our key, a
traceback); `redact_uri` shows a configured URL without its password and query string.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_MASK = "***"

_SECRETS = re.compile(
    # Authorization headers and bearer tokens, however they are quoted.
    r"(bearer\s+|authorization[\"']?\s*[:=]\s*[\"']?(?:bearer\s+)?)[^\s\"',;]+"
    # Databricks PATs and OAuth secrets, OpenAI-style keys.
    r"|\b(dapi|dkea|dose|sk-|sk_)[A-Za-z0-9_\-]{8,}"
    # user:password@ in a URL.
    r"|(?<=://)([^/\s:@]+:)[^/\s@]+(?=@)"
    # key=value pairs that name a secret (query strings, connection strings).
    r"|\b((?:api[-_]?key|access[-_]?token|refresh[-_]?token|token|password|passwd|pwd|"
    r"secret|client[-_]?secret|sig|signature|x-amz-signature)=)[^&\s\"',;]+",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """`text` with anything shaped like a credential replaced by `***`."""
    return _SECRETS.sub(_keep_label, text)


def _keep_label(match: re.Match[str]) -> str:
    label = match.group(1) or match.group(2) or match.group(3) or match.group(4) or ""
    return label + _MASK


def redact_uri(uri: str) -> str:
    """A configured URL as it may be shown: no password, no query string, no fragment
    (`https://user:***@host/path?***`). Anything unparsable is masked as text."""
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        return redact(uri)
    shown, _, _fragment = uri.partition("#")
    shown, _, query = shown.partition("?")
    if parts.password is not None:
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = f"{parts.username}:{_MASK}@{host}" + (f":{port}" if port else "")
        shown = shown.replace(parts.netloc, netloc, 1)
    return shown + (f"?{_MASK}" if query else "")
