"""The package's public names stay importable from `hookbouncer`."""

import hookbouncer

CORE_NAMES = {
    "Allowlist",
    "ConnectionFacts",
    "Decision",
    "Failure",
    "KeyRing",
    "MethodNotAllowed",
    "NotFound",
    "OpenedToken",
    "PinSet",
    "Reason",
    "RouteMatch",
    "TokenError",
    "TrustSnapshot",
    "Verdict",
    "Verifier",
    "check_startup",
    "match_route",
    "submission_properties",
    "webhook_urls",
}


def test_core_names_listed_in_all() -> None:
    missing = CORE_NAMES - set(hookbouncer.__all__)
    assert not missing


def test_every_listed_name_resolves() -> None:
    unresolved = [
        name for name in hookbouncer.__all__ if not hasattr(hookbouncer, name)
    ]
    assert not unresolved
