"""Quoted strings in structured header values (RFC 9110 section 5.6.4).

`Forwarded` (RFC 7239) and Envoy's `x-forwarded-client-cert` both separate
elements with `,` and pairs with `;`, and both allow those separators
inside a quoted string with backslash escapes. Both parsers use these two
functions, and turn `ValueError` into their own typed error.
"""

from __future__ import annotations


def split_outside_quotes(text: str, separator: str) -> list[str]:
    """Split `text` at each `separator` that is not inside a quoted string.

    Raises `ValueError` when a quoted string is not closed.
    """
    parts: list[str] = []
    start = 0
    quoted = False
    escaped = False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append(text[start:index])
            start = index + 1
    if quoted:
        raise ValueError("unterminated quoted string")
    parts.append(text[start:])
    return parts


def unquote(value: str) -> str:
    """Return a quoted string's content with its escapes removed.

    A value that does not start with a quote is returned as it is. Raises
    `ValueError` when the closing quote is missing.
    """
    if not value.startswith('"'):
        return value
    if len(value) < 2 or not value.endswith('"'):
        raise ValueError("unterminated quoted string")
    out: list[str] = []
    escaped = False
    for char in value[1:-1]:
        if escaped:
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        else:
            out.append(char)
    return "".join(out)
