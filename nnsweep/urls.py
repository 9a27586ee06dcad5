"""URL helpers: hide passwords before a URL is shown, logged or stored."""

from __future__ import annotations

import re

_USERINFO = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]*)@"
)
_QUERY_PW = re.compile(r"(?P<key>[?&](?:password|passwd|pwd)=)[^&\s]*", re.IGNORECASE)


def mask_url(text: str) -> str:
    """Replace any password in ``text`` (``scheme://user:pw@host`` or ``?password=``) by ***.

    Works on whole messages too, so an error text that quotes a URL is safe to print.
    """
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    return _QUERY_PW.sub(lambda m: f"{m['key']}***", text)


def secrets_of(url: str) -> list[str]:
    """The passwords a URL carries, to scrub them from any text that might still hold them."""
    found = [m["pw"] for m in _USERINFO.finditer(url) if m["pw"]]
    found += [m.group(0).split("=", 1)[1] for m in _QUERY_PW.finditer(url)]
    return [s for s in found if s]
