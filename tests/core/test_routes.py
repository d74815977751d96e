"""Route matching: status events, new-result, export and hostile paths."""

import pytest

from hookbouncer.routes import MethodNotAllowed, NotFound, RouteMatch, match_route

PREFIX = "/copyleaks"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/copyleaks/completed/scan-1", RouteMatch("status", "completed", "scan-1")),
        ("/copyleaks/COMPLETED/scan-1", RouteMatch("status", "completed", "scan-1")),
        ("/copyleaks/Completed/scan-1", RouteMatch("status", "completed", "scan-1")),
        ("/copyleaks/error/a", RouteMatch("status", "error", "a")),
        (
            "/copyleaks/creditsChecked/a_b.c",
            RouteMatch("status", "creditsChecked", "a_b.c"),
        ),
        (
            "/copyleaks/creditschecked/a",
            RouteMatch("status", "creditsChecked", "a"),
        ),
        ("/copyleaks/indexed/a", RouteMatch("status", "indexed", "a")),
        ("/copyleaks/new-result/a", RouteMatch("new_result", "newResult", "a")),
        (
            "/copyleaks/export/exp-9/completed",
            RouteMatch("export", "exportCompleted", None, "exp-9"),
        ),
        (
            "/copyleaks/completed/scan-1?x=1&y",
            RouteMatch("status", "completed", "scan-1"),
        ),
        ("/copyleaks/completed/scan%2D1", RouteMatch("status", "completed", "scan-1")),
        ("/copyleaks/%63ompleted/s", RouteMatch("status", "completed", "s")),
        (
            "/copyleaks/completed/" + "a" * 100,
            RouteMatch("status", "completed", "a" * 100),
        ),
    ],
)
def test_match_route(path: str, expected: RouteMatch) -> None:
    assert match_route(PREFIX, "POST", path) == expected


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "",
        "/copyleaks",
        "/copyleaks/",
        "/copyleaks/completed",
        "/copyleaks/completed/",
        "/copyleaks/completed//scan",
        "//copyleaks/completed/scan",
        "/copyleaks//completed/scan",
        "/copyleaks/completed/scan/",
        "/copyleaks/completed/scan/extra",
        "/copyleaks/started/scan",
        "/copyleaks/completed/..",
        "/copyleaks/completed/.",
        "/copyleaks/completed/%2e%2e",
        "/copyleaks/../completed/scan",
        "/copyleaks/completed/a%2Fb",
        "/copyleaks/completed/a%2fb",
        "/copyleaks/completed/a%252Fb",
        "/copyleaks/completed/a%",
        "/copyleaks/completed/a%zz",
        "/copyleaks/completed/a%ff",
        "/copyleaks/completed/a%00",
        "/copyleaks/completed/a b",
        "/copyleaks/completed/a+b",
        "/copyleaks/completed/é",
        "/copyleaks/completed/a#frag",
        "/copyleaks/completed/" + "a" * 101,
        "/COPYLEAKS/completed/scan",
        "/copyleaksx/completed/scan",
        "/copyleaks/New-Result/scan",
        "/copyleaks/export/e/started",
        "/copyleaks/export//completed",
        "/copyleaks/export/e/completed/x",
        "/other/completed/scan",
        "/copyleaks/completed/" + "a" * 5000,
    ],
)
def test_match_route_not_found(path: str) -> None:
    with pytest.raises(NotFound) as caught:
        match_route(PREFIX, "POST", path)
    assert caught.value.status == 404


@pytest.mark.parametrize("method", ["GET", "PUT", "HEAD", "DELETE", "post", ""])
def test_match_route_method_not_allowed(method: str) -> None:
    with pytest.raises(MethodNotAllowed) as caught:
        match_route(PREFIX, method, "/copyleaks/completed/scan")
    assert caught.value.status == 405


def test_match_route_unknown_path_wins_over_method() -> None:
    with pytest.raises(NotFound):
        match_route(PREFIX, "GET", "/nothing/here")


def test_match_route_empty_prefix() -> None:
    assert match_route("", "POST", "/indexed/s1") == RouteMatch(
        "status", "indexed", "s1"
    )


def test_route_subject_id() -> None:
    assert RouteMatch("status", "completed", "s").subject_id == "s"
    assert RouteMatch("export", "exportCompleted", None, "e").subject_id == "e"
