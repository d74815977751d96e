"""Config loading: defaults, environment overrides, and errors that name the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from hookbouncer.config import Config, load_config, parse_duration
from hookbouncer.errors import ConfigError

PLAIN = """
state_dir = "{state}"
[server]
mode = "plain"
listen = ["127.0.0.1:8080"]
trusted_proxies = ["127.0.0.1/32"]
forwarded_certificate = "nginx"
[developer_payload]
mode = "plain"
secrets_file = "payload-secrets"
[header_secret]
secrets_env = ["HB_TEST_TOKEN"]
"""


def write_config(tmp_path: Path, text: str) -> Path:
    (tmp_path / "payload-secrets").write_text("first-secret\nsecond-secret\n")
    path = tmp_path / "hookbouncer.toml"
    path.write_text(text.format(state=tmp_path / "state"))
    return path


def load(tmp_path: Path, text: str = PLAIN, **environ: str) -> Config:
    environ.setdefault("HB_TEST_TOKEN", "header-token")
    return load_config(write_config(tmp_path, text), environ)


def test_plain_config_loads(tmp_path: Path) -> None:
    config = load(tmp_path)
    assert config.server.mode == "plain"
    assert config.server.listen == ("127.0.0.1:8080",)
    assert len(config.developer_payload.secrets) == 2
    assert config.developer_payload.secrets[0].reveal() == b"first-secret"
    assert config.header_secret.secrets[0].reveal() == b"header-token"
    assert config.inbox_url == f"sqlite:///{tmp_path / 'state' / 'inbox.db'}"


def test_secret_repr_hides_value(tmp_path: Path) -> None:
    config = load(tmp_path)
    shown = repr(config)
    assert "first-secret" not in shown
    assert "header-token" not in shown


def test_environment_overrides_nested_keys(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        HOOKBOUNCER_SERVER__MAX_BODY_BYTES="2048",
        HOOKBOUNCER_FEEDS__REFRESH_EVERY="12h",
        HOOKBOUNCER_ROUTES__STATUS__CHECKS='["source_ip"]',
    )
    assert config.server.max_body_bytes == 2048
    assert config.feeds.refresh_every == 12 * 3600
    assert config.routes["status"].checks == ("source_ip",)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", 90.0),
        ("15m", 900.0),
        ("24h", 86400.0),
        ("1h30m", 5400.0),
        ("250ms", 0.25),
    ],
)
def test_parse_duration_accepts(text: str, expected: float) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "10", "h", "10x", "-5m", "1h 30"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"HOOKBOUNCER_SERVER__MAX_BODY_BYTES": "10"}, "server.max_body_bytes"),
        (
            {"HOOKBOUNCER_SERVER__CLIENT_CERTIFICATE": "maybe"},
            "server.client_certificate",
        ),
        ({"HOOKBOUNCER_FEEDS__REFRESH_EVERY": "soon"}, "feeds.refresh_every"),
        ({"HOOKBOUNCER_FEEDS__API_BASE": "ftp://x"}, "feeds.api_base"),
        ({"HOOKBOUNCER_ROUTES__STATUS__CHECKS": "[]"}, "routes.status.checks"),
        ({"HOOKBOUNCER_ROUTES__STATUS__CHECKS": '["magic"]'}, "routes.status.checks"),
        ({"HOOKBOUNCER_SERVER__LISTEN": '["nowhere"]'}, "server.listen"),
        ({"HOOKBOUNCER_SERVER__TRUSTED_PROXIES": '["0.0.0.0/0"]'}, "trusted_proxies"),
        ({"HOOKBOUNCER_SERVER__TRUSTED_PROXIES": '["::/0"]'}, "trusted_proxies"),
        (
            {"HOOKBOUNCER_SERVER__TRUSTED_PROXIES": '["::ffff:0:0/96"]'},
            "trusted_proxies",
        ),
        ({"HOOKBOUNCER_SERVER__TRUSTED_PROXIES": '["*"]'}, "trusted_proxies"),
        ({"HOOKBOUNCER_SERVER__TRUSTED_PROXIES": '["10.0.0.1/8"]'}, "trusted_proxies"),
        ({"HOOKBOUNCER_SERVER__PORT": "1"}, "server.port"),
        ({"HOOKBOUNCER_INBOX__URL": "mysql://x"}, "inbox.url"),
        ({"HOOKBOUNCER_FEEDS__FAIL_CLOSED_AFTER": "1h"}, "feeds.fail_closed_after"),
        ({"HOOKBOUNCER_FEEDS__FAIL_CLOSED_AFTER": "48h30m"}, "feeds.fail_closed_after"),
        ({"HOOKBOUNCER_SERVER__LISTEN": "[]"}, "server.listen"),
        (
            {"HOOKBOUNCER_SERVER__LISTEN": '["127.0.0.1:1", "127.0.0.1:1"]'},
            "server.listen",
        ),
        ({"HOOKBOUNCER_ADMIN__LISTEN": "127.0.0.1:8080"}, "admin.listen"),
        (
            {"HOOKBOUNCER_SERVER__TRUSTED_PROXIES": '["0.0.0.0/1", "128.0.0.0/1"]'},
            "trusted_proxies",
        ),
        (
            {"HOOKBOUNCER_SERVER__TRUSTED_PROXIES": '["::/1", "8000::/1"]'},
            "trusted_proxies",
        ),
        (
            {
                "HOOKBOUNCER_SERVER__TRUSTED_PROXIES": (
                    '["0.0.0.0/1", "::ffff:128.0.0.0/97"]'
                )
            },
            "trusted_proxies",
        ),
    ],
)
def test_invalid_value_names_key(
    tmp_path: Path, override: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, **override)
    assert named in str(caught.value)


def test_inline_secret_rejected(tmp_path: Path) -> None:
    text = PLAIN.replace('secrets_file = "payload-secrets"', 'secrets = ["oops"]')
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    assert "developer_payload.secrets" in str(caught.value)
    assert "oops" not in str(caught.value)


def test_missing_secret_variable_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(tmp_path, PLAIN), {})
    assert "HB_TEST_TOKEN" in str(caught.value)


def test_whitespace_secret_line_rejected(tmp_path: Path) -> None:
    path = write_config(tmp_path, PLAIN)
    (tmp_path / "payload-secrets").write_text("good\n   \n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {"HB_TEST_TOKEN": "t"})
    assert "line 2" in str(caught.value)


def test_client_certificate_on_plain_without_terminator(tmp_path: Path) -> None:
    text = PLAIN.replace('forwarded_certificate = "nginx"', "")
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    assert "server.forwarded_certificate" in str(caught.value)


def test_tls_mode_needs_certificate(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, HOOKBOUNCER_SERVER__MODE="tls")
    assert "server.certificate" in str(caught.value)


def test_sealed_mode_needs_key_ring(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, HOOKBOUNCER_DEVELOPER_PAYLOAD__MODE="sealed")
    assert "developer_payload.keys_file" in str(caught.value)


def test_relay_url_needs_signing_secret(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, HOOKBOUNCER_RELAY__URL="http://127.0.0.1:8000/hook")
    assert "relay.signing_secret" in str(caught.value)


def test_missing_file_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "absent.toml", {})
    assert "absent.toml" in str(caught.value)


def test_invalid_toml_named(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[server\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert "not valid TOML" in str(caught.value)


def test_feeds_only_config_for_sync(tmp_path: Path) -> None:
    path = tmp_path / "feeds-only.toml"
    path.write_text(f'state_dir = "{tmp_path}"\n[feeds]\nrefresh_every = "12h"\n')
    with pytest.raises(ConfigError):
        load_config(path, {})
    config = load_config(path, {}, gateway=False)
    assert config.feeds.refresh_every == 12 * 3600


def test_proxy_protocol_needs_trusted_proxy(tmp_path: Path) -> None:
    text = PLAIN.replace('trusted_proxies = ["127.0.0.1/32"]', "").replace(
        'forwarded_certificate = "nginx"', "proxy_protocol = true"
    )
    text = text.replace(
        "[developer_payload]",
        '[routes.status]\nchecks = ["source_ip"]\n[developer_payload]',
    )
    with pytest.raises(ConfigError) as caught:
        load(
            tmp_path,
            text,
            HOOKBOUNCER_ROUTES__NEW_RESULT__CHECKS='["source_ip"]',
            HOOKBOUNCER_ROUTES__EXPORT__CHECKS='["source_ip"]',
        )
    assert "server.proxy_protocol" in str(caught.value)


def test_mapped_proxy_range_accepted(tmp_path: Path) -> None:
    config = load(
        tmp_path, HOOKBOUNCER_SERVER__TRUSTED_PROXIES='["::ffff:10.0.0.0/104"]'
    )
    assert config.server.trusted_proxies == ("::ffff:10.0.0.0/104",)


def test_override_error_names_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, HOOKBOUNCER_SERVER__LISTN='["127.0.0.1:1"]')
    message = str(caught.value)
    assert message.startswith("environment variable HOOKBOUNCER_SERVER__LISTN:")
    assert "did you mean listen?" in message


def test_config_variable_points_to_flag(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, HOOKBOUNCER_CONFIG="/etc/hookbouncer.toml")
    assert "--config" in str(caught.value)


def test_feed_api_base_must_be_https(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, HOOKBOUNCER_FEEDS__API_BASE="http://127.0.0.1:8000")
    assert "feeds.api_base" in str(caught.value)
    assert "https://" in str(caught.value)


def test_invalid_relay_secret_stops_load(tmp_path: Path) -> None:
    (tmp_path / "relay-secret").write_text("not-a-whsec\n")
    with pytest.raises(ConfigError) as caught:
        load(
            tmp_path,
            HOOKBOUNCER_RELAY__URL="http://127.0.0.1:8000/hook",
            HOOKBOUNCER_RELAY__SIGNING_SECRET_FILE=str(tmp_path / "relay-secret"),
        )
    assert "relay.signing_secret" in str(caught.value)
    assert "not-a-whsec" not in str(caught.value)


@pytest.mark.parametrize(
    "line",
    [
        b"\xc2\xa0",  # a no-break space
        b"\xe2\x80\x8b",  # a zero-width space
        b"\x00",
        b"good ",
        b" good",
    ],
)
def test_invisible_secret_line_rejected(tmp_path: Path, line: bytes) -> None:
    path = write_config(tmp_path, PLAIN)
    (tmp_path / "payload-secrets").write_bytes(b"first-secret\n" + line + b"\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {"HB_TEST_TOKEN": "t"})
    assert "line 2" in str(caught.value)


def test_utf16_secrets_file_rejected(tmp_path: Path) -> None:
    path = write_config(tmp_path, PLAIN)
    (tmp_path / "payload-secrets").write_bytes("first-secret\n".encode("utf-16"))
    with pytest.raises(ConfigError) as caught:
        load_config(path, {"HB_TEST_TOKEN": "t"})
    assert "byte order mark" in str(caught.value)


def test_invisible_secret_variable_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, HB_TEST_TOKEN="\u200b")
    assert "HB_TEST_TOKEN" in str(caught.value)


def test_pasted_secret_in_env_list_not_shown(tmp_path: Path) -> None:
    text = PLAIN.replace('["HB_TEST_TOKEN"]', '["s3cr3t-value-not-a-name!"]')
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    assert "not an environment variable name" in str(caught.value)
    assert "s3cr3t" not in str(caught.value)


def test_override_value_never_echoed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, HOOKBOUNCER_DEVELOPER_PAYLOAD="S3CRET-value")
    assert "HOOKBOUNCER_DEVELOPER_PAYLOAD" in str(caught.value)
    assert "S3CRET" not in str(caught.value)


def test_database_password_not_echoed(tmp_path: Path) -> None:
    text = PLAIN + '[inbox]\nurl = "postgress://hb:pa55word@127.0.0.1/test"\n'
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, text)
    assert "inbox.url" in str(caught.value)
    assert "pa55word" not in str(caught.value)
