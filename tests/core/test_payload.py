"""Strict body parsing and developerPayload extraction."""

import json

import pytest

from hookbouncer.errors import MalformedBody
from hookbouncer.payload import developer_payload, parse_body


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"status": 0, "developerPayload": "abc"}', "abc"),
        (b'{"developerPayload": ""}', ""),
        ('{"developerPayload": "h\u00e9\u4e2d"}'.encode(), "h\u00e9\u4e2d"),
        (b'{"developerPayload": "\\u00e9"}', "\u00e9"),
        (b'{"status": 3}', None),
        (b'{"developerPayload": null}', None),
        (b'{"a": {"developerPayload": "nested"}}', None),
        (b' \n{"developerPayload": "x"}\n ', "x"),
    ],
)
def test_developer_payload(body: bytes, expected: str | None) -> None:
    assert developer_payload(parse_body(body)) == expected


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"developerPayload": "a", "developerPayload": "b"}', "duplicate_key"),
        (b'{"a": {"x": 1, "x": 2}}', "duplicate_key"),
        (b'{"a": [{"x": 1}, {"y": 1, "y": 1}]}', "duplicate_key"),
        (b'{"developerPayload": "a", "developerPayload": "a"}', "duplicate_key"),
        (b'{"\\u0061": 1, "a": 2}', "duplicate_key"),
        (b"", "invalid_json"),
        (b"{", "invalid_json"),
        (b'{"a": NaN}', "invalid_json"),
        (b'{"a": Infinity}', "invalid_json"),
        (b'{"a": -Infinity}', "invalid_json"),
        (b'{"a": 1e400}', "invalid_json"),
        (b'{"a": [-1.5e309]}', "invalid_json"),
        (b"{'a': 1}", "invalid_json"),
        (b'{"a": 1,}', "invalid_json"),
        (b'{"a": "\x01"}', "invalid_json"),
        (b'{"a": 1} {"b": 2}', "invalid_json"),
        (b'{"a": 1' + b"0" * 5000 + b"}", "invalid_json"),
        (b'\xef\xbb\xbf{"a": 1}', "invalid_json"),
        (b'{"a": "\xff"}', "invalid_utf8"),
        (b'{"a": "\xed\xa0\x80"}', "invalid_utf8"),
        ('{"a": 1}'.encode("utf-16"), "invalid_utf8"),
        (b"[]", "not_an_object"),
        (b'"developerPayload"', "not_an_object"),
        (b"1", "not_an_object"),
        (b"null", "not_an_object"),
        (b"[" * 100_000 + b"]" * 100_000, "invalid_json"),
        (b'{"a": ' + b"[" * 65 + b"]" * 65 + b"}", "too_deep"),
    ],
)
def test_parse_body_malformed(body: bytes, reason: str) -> None:
    with pytest.raises(MalformedBody) as caught:
        parse_body(body)
    assert caught.value.reason == reason
    assert caught.value.status == 400


def test_parse_body_depth_limit_exact() -> None:
    inside = b'{"a": ' + b"[" * 63 + b"]" * 63 + b"}"
    assert parse_body(inside) == {"a": json.loads(b"[" * 63 + b"]" * 63)}


def alternating_nesting(depth: int) -> bytes:
    """Return a body whose objects and arrays alternate, `depth` levels deep."""
    text = b"0"
    for level in range(depth - 1, 0, -1):
        text = b'{"k": ' + text + b"}" if level % 2 else b"[" + text + b"]"
    return b'{"a": ' + text + b"}"


@pytest.mark.parametrize(("depth", "accepted"), [(64, True), (65, False), (128, False)])
def test_parse_body_depth_alternating(depth: int, accepted: bool) -> None:
    body = alternating_nesting(depth)
    if accepted:
        assert "a" in parse_body(body)
    else:
        with pytest.raises(MalformedBody) as caught:
            parse_body(body)
        assert caught.value.reason == "too_deep"


def test_parse_body_brackets_in_strings_not_nesting() -> None:
    body = b'{"a": "' + b"[" * 500 + b'", "b": "\\"{{{"}'
    assert parse_body(body)["b"] == '"{{{'


def test_parse_body_size_limit() -> None:
    with pytest.raises(MalformedBody) as caught:
        parse_body(b'{"a": "' + b"x" * 100 + b'"}', max_bytes=50)
    assert caught.value.reason == "body_too_large"


@pytest.mark.parametrize(
    "body",
    [
        b'{"developerPayload": 5}',
        b'{"developerPayload": true}',
        b'{"developerPayload": ["a"]}',
        b'{"developerPayload": {"a": "b"}}',
    ],
)
def test_developer_payload_not_string(body: bytes) -> None:
    with pytest.raises(MalformedBody) as caught:
        developer_payload(parse_body(body))
    assert caught.value.reason == "invalid_developer_payload"


def test_developer_payload_lone_surrogate_kept() -> None:
    # JSON escapes can produce text that is not valid Unicode; it is
    # passed on and fails the later comparison instead of raising here.
    assert developer_payload(parse_body(b'{"developerPayload": "\\ud800"}')) == "\ud800"
