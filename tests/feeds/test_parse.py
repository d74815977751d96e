"""Feed bodies: the accepted JSON shapes and what gets rejected."""

from __future__ import annotations

import json
from ipaddress import ip_network
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hookbouncer.feeds.model import FeedUpdateError
from hookbouncer.feeds.parse import (
    describe,
    extract_entries,
    parse_ranges,
    parse_thumbprints,
    preview,
)

SHA1 = "A1B2C3D4E5F60718293A4B5C6D7E8F9011223344"


def body(value: Any) -> bytes:
    return json.dumps(value).encode()


@pytest.mark.parametrize(
    "document",
    [
        ["192.0.2.0/24", "198.51.100.7"],
        {"ips": ["192.0.2.0/24", "198.51.100.7"]},
        {"anything": ["192.0.2.0/24", "198.51.100.7"]},
        {"Ranges": ["192.0.2.0/24", "198.51.100.7"], "updated": "2026-01-01"},
        {"cidrs": ["192.0.2.0/24", "198.51.100.7"], "count": 2},
        {"data": ["192.0.2.0/24", "198.51.100.7"], "version": 3},
        {"items": ["192.0.2.0/24", "198.51.100.7"], "next": None},
        [{"ip": "192.0.2.0/24"}, {"ip": "198.51.100.7"}],
        [{"cidr": "192.0.2.0/24", "region": "eu"}, {"CIDR": "198.51.100.7"}],
        [{"range": "192.0.2.0/24"}, {"address": "198.51.100.7"}],
        {"data": [{"ip": "192.0.2.0/24"}, {"ip": "198.51.100.7"}]},
    ],
)
def test_parse_ranges_accepts_shape(document: Any) -> None:
    parsed = parse_ranges(body(document))
    assert parsed.networks == (
        ip_network("192.0.2.0/24"),
        ip_network("198.51.100.7/32"),
    )


@pytest.mark.parametrize(
    "document",
    [
        [SHA1],
        {"thumbprints": [SHA1]},
        {"certificates": [SHA1], "issued": "today"},
        [{"thumbprint": SHA1}],
        [{"Thumbprint": SHA1, "subject": "CN=copyleaks"}],
        [{"fingerprint": SHA1}],
        [{"sha1": SHA1}],
    ],
)
def test_parse_thumbprints_accepts_shape(document: Any) -> None:
    assert parse_thumbprints(body(document)).thumbprints == (SHA1.lower(),)


def test_parse_thumbprints_takes_every_hash_field() -> None:
    sha256 = "ab" * 32
    parsed = parse_thumbprints(body([{"sha1": SHA1, "sha256": sha256}]))
    assert parsed.thumbprints == (SHA1.lower(), sha256)


def test_parse_accepts_utf8_bom_and_whitespace() -> None:
    parsed = parse_ranges(b'\xef\xbb\xbf \n["192.0.2.0/24"]\n')
    assert parsed.networks == (ip_network("192.0.2.0/24"),)


def test_parse_ranges_deduplicates() -> None:
    parsed = parse_ranges(body(["192.0.2.0/24", "192.0.2.0/24"]))
    assert parsed.networks == (ip_network("192.0.2.0/24"),)
    assert parsed.raw_count == 2


@pytest.mark.parametrize(
    ("raw", "reason", "message"),
    [
        (b"[]", "empty", "list is empty"),
        (b'{"ips": []}', "empty", "list is empty"),
        (b'["192.0.2.0/24"]["198.51.100.0/24"]', "not_json", "Extra data"),
        (b'["192.0.2.0/24"]\n["198.51.100.0/24"]', "not_json", "Extra data"),
        (b'["192.0.2.0/24", "198.51', "not_json", "not one JSON document"),
        (b"192.0.2.0/24\n198.51.100.0/24\n", "not_json", "not one JSON"),
        (b"", "not_json", "not one JSON"),
        (b"\xff\xfe[]", "not_json", "not UTF-8"),
        (b"[NaN]", "not_json", "NaN"),
        (b"[" * 100_000, "not_json", "too deeply"),
        (b'{"a": [], "a": []}', "not_json", "duplicate key"),
        (b"<!DOCTYPE html><html>challenge</html>", "html", "HTML page"),
        (b"  <html><body>x</body></html>", "html", "HTML page"),
        (b'"192.0.2.0/24"', "shape", "a JSON string"),
        (b"null", "shape", "a JSON null"),
        (b"42", "shape", "a JSON number"),
        (b'{"status": "ok", "count": 1}', "shape", "keys ['status', 'count']"),
        (b'{"ips": ["192.0.2.0/24"], "ranges": ["198.51.100.0/24"]}', "shape", ""),
        (b'{"ips": "192.0.2.0/24"}', "shape", "object"),
        (b"[1, 2]", "shape", "number elements"),
        (b'[["192.0.2.0/24"]]', "shape", "array elements"),
        (b'["192.0.2.0/24", {"ip": "198.51.100.0/24"}]', "shape", "object, string"),
        (b'[{"name": "x"}]', "shape", "object elements"),
        (b'[{"ip": 3232235520}]', "shape", "object elements"),
        (b'[{"ip": null}]', "shape", "object elements"),
        (b'{"data": {"ips": ["192.0.2.0/24"]}}', "shape", "keys ['data']"),
        (b'["192.0.2.0/24", "0.0.0.0/0"]', "invalid_entry", "covers every address"),
        (b'["192.0.2.0/24", "10.0.0.1/8"]', "invalid_entry", "host bits"),
        (b'["192.0.2.0/24", ""]', "invalid_entry", "empty"),
    ],
)
def test_parse_ranges_rejects(raw: bytes, reason: str, message: str) -> None:
    with pytest.raises(FeedUpdateError) as caught:
        parse_ranges(raw)
    assert caught.value.reason == reason
    assert message in str(caught.value)


def test_html_content_type_rejected() -> None:
    with pytest.raises(FeedUpdateError) as caught:
        parse_ranges(b'["192.0.2.0/24"]', content_type="text/html; charset=utf-8")
    assert caught.value.reason == "html"


def test_rejection_names_status_type_and_first_bytes() -> None:
    with pytest.raises(FeedUpdateError) as caught:
        extract_entries(
            b'{"error": "\x1b[31mred\x00"}' + b"x" * 100,
            feed="ranges",
            content_type="application/json",
            status=200,
        )
    message = str(caught.value)
    assert "status 200" in message
    assert "application/json" in message
    assert "bytes starting" in message
    assert "\x1b" not in message
    assert "\x00" not in message
    assert "x" * 60 not in message


def test_parse_thumbprints_rejects_bad_length() -> None:
    with pytest.raises(FeedUpdateError) as caught:
        parse_thumbprints(body([SHA1, SHA1[:-2]]))
    assert caught.value.reason == "invalid_entry"
    assert "38 hex digits" in str(caught.value)
    assert "position 1" in str(caught.value)


def test_parse_ranges_enforces_configured_minimum() -> None:
    with pytest.raises(FeedUpdateError, match="minimum prefix /24"):
        parse_ranges(body(["192.0.2.0/24", "198.51.0.0/16"]), min_v4=24)


def test_describe_does_not_echo_values() -> None:
    text = describe({"secret-looking-key": "value-that-must-not-show"})
    assert "value-that-must-not-show" not in text


def test_preview_replaces_unprintable_bytes() -> None:
    assert preview(b"ab\ncd\x00\xff") == "ab?cd??"


@given(raw=st.binary(max_size=300))
def test_parse_arbitrary_bytes_only_raises_feed_error(raw: bytes) -> None:
    try:
        parse_ranges(raw)
        parse_thumbprints(raw)
    except FeedUpdateError:
        pass


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(document=json_values)
def test_parse_arbitrary_json_only_raises_feed_error(document: object) -> None:
    raw = json.dumps(document).encode()
    for parse in (parse_ranges, parse_thumbprints):
        try:
            parse(raw)
        except FeedUpdateError as error:
            assert error.reason in {"shape", "empty", "invalid_entry", "not_json"}
