"""Constant-time secret matching and header credential extraction."""

import pytest

from hookbouncer.config import Secret
from hookbouncer.secretmatch import HeaderSecretError, SecretMatcher, header_credential

SECRETS = [
    Secret(b"current-secret", "test:1"),
    Secret("n\u00e9w-s\u00eacr\u00e9t".encode(), "test:2"),
    Secret(b"\xff\xfe-binary", "test:3"),
]


@pytest.mark.parametrize(
    ("presented", "matches"),
    [
        ("current-secret", True),
        (b"current-secret", True),
        ("n\u00e9w-s\u00eacr\u00e9t", True),
        ("n\u00e9w-s\u00eacr\u00e9t".encode(), True),
        (b"\xff\xfe-binary", True),
        ("current-secre", False),
        ("current-secret ", False),
        ("CURRENT-SECRET", False),
        ("", False),
        (b"", False),
        ("\u00e9\u00e9\u00e9", False),
        ("\ud800", False),
        ("\x00", False),
        ("\U0001f600" * 1000, False),
        ("current-secret\x00", False),
        ("nu\u0301w-s\u00eacr\u00e9t", False),
    ],
)
def test_secret_matcher(presented: str | bytes, matches: bool) -> None:
    assert SecretMatcher(SECRETS).matches(presented) is matches


def test_secret_matcher_without_secrets_matches_nothing() -> None:
    assert SecretMatcher([]).matches("anything") is False


@pytest.mark.parametrize(
    ("headers", "name", "scheme", "expected"),
    [
        ([("authorization", "Bearer abc")], "Authorization", "Bearer", b"abc"),
        ([("authorization", "bearer abc")], "Authorization", "Bearer", b"abc"),
        ([("authorization", "BEARER   abc  ")], "Authorization", "Bearer", b"abc"),
        ([("authorization", "Bearer a b")], "Authorization", "Bearer", b"a b"),
        ([("x-hook-secret", "abc")], "X-Hook-Secret", "", b"abc"),
        ([("x-hook-secret", "Bearer abc")], "X-Hook-Secret", "", b"Bearer abc"),
        (
            [("x-hook-secret", "caf\u00c3\u00a9")],
            "x-hook-secret",
            "",
            "caf\u00e9".encode(),
        ),
        ([("x-hook-secret", "\u20ac")], "x-hook-secret", "", "\u20ac".encode()),
    ],
)
def test_header_credential(
    headers: list[tuple[str, str]], name: str, scheme: str, expected: bytes
) -> None:
    assert header_credential(headers, name, scheme) == expected


@pytest.mark.parametrize(
    ("headers", "scheme", "reason"),
    [
        ([], "Bearer", "header_missing"),
        ([("x-other", "Bearer abc")], "Bearer", "header_missing"),
        ([("authorization", "")], "", "header_missing"),
        ([("authorization", "Bearer ")], "Bearer", "header_scheme"),
        ([("authorization", "Bearer")], "Bearer", "header_scheme"),
        ([("authorization", "Basic abc")], "Bearer", "header_scheme"),
        ([("authorization", "Bearerabc")], "Bearer", "header_scheme"),
        (
            [("authorization", "Bearer abc"), ("authorization", "Bearer abc")],
            "Bearer",
            "header_repeated",
        ),
    ],
)
def test_header_credential_fails(
    headers: list[tuple[str, str]], scheme: str, reason: str
) -> None:
    with pytest.raises(HeaderSecretError) as caught:
        header_credential(headers, "Authorization", scheme)
    assert caught.value.reason == reason
    assert caught.value.status == 403
