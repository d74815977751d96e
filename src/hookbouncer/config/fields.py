"""Typed readers for one TOML table, shared by the config sections.

Each reader takes the table, the key, the dotted name used in messages and a
default, and raises `ConfigError` naming the key, the value and the fix.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from hookbouncer.config.model import Secret
from hookbouncer.errors import ConfigError

MISSING: Any = object()


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Parse `90s`, `15m`, `24h`, `7d` or `1h30m` into seconds."""
    compact = text.strip().replace(" ", "")
    parts = _DURATION_PART.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise ValueError(f"invalid duration {text!r}: use a number and a unit")
    return sum(float(number) * _DURATION_UNITS[unit] for number, unit in parts)


_DURATION_FIX = (
    'use a number of seconds or a duration such as "250ms", "30s", "15m",'
    ' "24h", "30d" or "1h30m"'
)


class TableReader:
    """Converts and validates values of the raw TOML tables."""

    def __init__(
        self,
        raw: dict[str, Any],
        source: str,
        base_dir: Path,
        environ: Mapping[str, str],
    ) -> None:
        self.raw = raw
        self.source = source
        self.base_dir = base_dir
        self.environ = environ
        # Dotted key -> the HOOKBOUNCER_… variable that set it, so an error
        # blames the variable instead of the file.
        self.overrides: dict[str, str] = {}

    def origin(self, key: str) -> str:
        variable = self.overrides.get(key)
        return f"environment variable {variable}" if variable else self.source

    def fail(self, key: str, value: object, fix: str) -> ConfigError:
        if key in self.overrides:
            # A variable may hold a secret meant for elsewhere (a name clash
            # with a section, say), so its value is never echoed.
            return ConfigError(f"{self.origin(key)}: {key} is invalid: {fix}")
        if value is MISSING:
            shown = "<missing>"
        elif isinstance(value, str):
            shown = repr(_URL_PASSWORD.sub(r"\1:***@", value))
        else:
            shown = repr(value)
        return ConfigError(f"{self.origin(key)}: {key} = {shown} is invalid: {fix}")

    def table(self, name: str, known: set[str]) -> dict[str, Any]:
        value = self.raw.get(name, {})
        if not isinstance(value, dict):
            raise self.fail(name, value, "it must be a table")
        return self.check_keys(name, value, known)

    def check_keys(
        self, prefix: str, value: dict[str, Any], known: set[str]
    ) -> dict[str, Any]:
        unknown = sorted(set(value) - known)
        if unknown:
            key = f"{prefix}.{unknown[0]}" if prefix else unknown[0]
            place = f"key {key}" if prefix else f"top-level key {key}"
            close = difflib.get_close_matches(unknown[0], sorted(known), n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            if key == "config":
                hint = "name the config file with --config, not a variable; "
            raise ConfigError(
                f"{self.origin(key)}: unknown {place}: {hint}the known keys"
                f" are {', '.join(sorted(known))}"
            )
        return value

    def text(self, table: dict[str, Any], key: str, name: str, default: str) -> str:
        value = table.get(key, default)
        if not isinstance(value, str):
            raise self.fail(name, value, "it must be a string")
        return value

    def choice(
        self,
        table: dict[str, Any],
        key: str,
        name: str,
        default: str,
        allowed: tuple[str, ...],
    ) -> str:
        value = table.get(key, default)
        if value not in allowed:
            raise self.fail(name, value, f"use one of {', '.join(allowed)}")
        return cast(str, value)

    def boolean(
        self, table: dict[str, Any], key: str, name: str, default: bool
    ) -> bool:
        value = table.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(name, value, "use true or false")
        return value

    def integer(
        self,
        table: dict[str, Any],
        key: str,
        name: str,
        default: int,
        minimum: int,
        maximum: int | None = None,
    ) -> int:
        value = table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(name, value, "it must be a whole number")
        if value < minimum or (maximum is not None and value > maximum):
            bound = (
                f"from {minimum} to {maximum}"
                if maximum is not None
                else f"at least {minimum}"
            )
            raise self.fail(name, value, f"use a number {bound}")
        return value

    def duration(
        self,
        table: dict[str, Any],
        key: str,
        name: str,
        default: float | None,
        minimum: float = 0.0,
    ) -> float | None:
        value = table.get(key, MISSING)
        if value is MISSING or value == "":
            return default
        if isinstance(value, bool):
            raise self.fail(name, value, _DURATION_FIX)
        if isinstance(value, int | float):
            seconds = float(value)
        elif isinstance(value, str):
            try:
                seconds = parse_duration(value)
            except ValueError:
                raise self.fail(name, value, _DURATION_FIX) from None
        else:
            raise self.fail(name, value, _DURATION_FIX)
        if seconds < minimum:
            raise self.fail(name, value, f"use at least {minimum:g} seconds")
        return seconds

    def required_duration(
        self,
        table: dict[str, Any],
        key: str,
        name: str,
        default: float,
        minimum: float = 0.0,
    ) -> float:
        seconds = self.duration(table, key, name, default, minimum)
        assert seconds is not None
        return seconds

    def strings(
        self, table: dict[str, Any], key: str, name: str, default: tuple[str, ...]
    ) -> tuple[str, ...]:
        value = table.get(key, list(default))
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(name, value, "it must be a list of strings")
        return tuple(value)

    def path(self, table: dict[str, Any], key: str, name: str) -> Path | None:
        value = table.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise self.fail(name, value, "it must be a file path")
        candidate = Path(value).expanduser()
        return candidate if candidate.is_absolute() else self.base_dir / candidate

    def url(self, table: dict[str, Any], key: str, name: str, default: str) -> str:
        value = self.text(table, key, name, default)
        if value and not re.match(r"^https?://[^/\s]+", value):
            raise self.fail(name, value, "use an http:// or https:// URL")
        return value.rstrip("/") if key == "api_base" else value

    def https_url(
        self, table: dict[str, Any], key: str, name: str, default: str
    ) -> str:
        """Read a URL that carries trust or credentials, so must be https."""
        value = self.url(table, key, name, default)
        if value and not value.startswith("https://"):
            raise self.fail(
                name,
                value,
                "use an https:// URL: what comes back decides which requests"
                " are trusted, so it must be fetched over verified TLS",
            )
        return value

    def secrets(self, table: dict[str, Any], prefix: str) -> tuple[Secret, ...]:
        """Read secrets from `secrets_file` (one per line) and `secrets_env`."""
        if "secrets" in table:
            raise self.fail(
                f"{prefix}.secrets",
                "<hidden>",
                "never write secrets in the config file: put them in a file"
                f" named by {prefix}.secrets_file or in environment variables"
                f" named by {prefix}.secrets_env",
            )
        found: list[Secret] = []
        file_path = self.path(table, "secrets_file", f"{prefix}.secrets_file")
        if file_path is not None:
            data = self.read_secret_file(file_path, f"{prefix}.secrets_file")
            # Only a final line break may end the file; a blank line inside
            # is a mistake worth stopping for.
            lines = data.decode("utf-8").split("\n")
            if lines and lines[-1] == "":
                lines.pop()
            for number, line in enumerate(lines, start=1):
                where = f"{file_path}:{number}"
                problem = secret_problem(line.rstrip("\r"))
                if problem:
                    raise self.fail(
                        f"{prefix}.secrets_file",
                        str(file_path),
                        f"line {number} {problem}; remove or fix that line",
                    )
                found.append(Secret(line.rstrip("\r").encode("utf-8"), where))
        names = self.strings(table, "secrets_env", f"{prefix}.secrets_env", ())
        for index, variable in enumerate(names, start=1):
            found.append(self.env_secret(variable, f"{prefix}.secrets_env", index))
        return tuple(found)

    def one_secret(self, table: dict[str, Any], key: str, prefix: str) -> Secret | None:
        """Read one secret from `KEY_file` or the variable named by `KEY_env`."""
        if key in table:
            raise self.fail(
                f"{prefix}.{key}",
                "<hidden>",
                f"never write secrets in the config file: use {prefix}.{key}_file"
                f" or {prefix}.{key}_env",
            )
        file_path = self.path(table, f"{key}_file", f"{prefix}.{key}_file")
        variable = table.get(f"{key}_env")
        if file_path is not None:
            name = f"{prefix}.{key}_file"
            data = self.read_secret_file(file_path, name)
            # One secret per file: surrounding line breaks are not part of it.
            text = data.decode("utf-8").strip("\r\n")
            problem = secret_problem(text)
            if problem:
                raise self.fail(name, str(file_path), f"the secret {problem}")
            return Secret(text.encode("utf-8"), str(file_path))
        if variable is not None:
            if not isinstance(variable, str):
                raise self.fail(
                    f"{prefix}.{key}_env", "<hidden>", "name an environment variable"
                )
            return self.env_secret(variable, f"{prefix}.{key}_env", 1)
        return None

    def read_secret_file(self, path: Path, name: str) -> bytes:
        """Return the bytes of a secrets file that is UTF-8 text."""
        try:
            data = path.read_bytes()
        except OSError as error:
            raise self.fail(
                name,
                str(path),
                f"the file cannot be read ({error.strerror}); check the path"
                " and its permissions",
            ) from None
        if data.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
            raise self.fail(
                name,
                str(path),
                "the file starts with a byte order mark; save it as UTF-8 without one",
            )
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail(
                name, str(path), "the file is not UTF-8 text; save it as UTF-8"
            ) from None
        return data

    def env_secret(self, variable: str, name: str, index: int) -> Secret:
        """Read the secret in environment variable `variable`."""
        if not _ENV_NAME.fullmatch(variable):
            # Possibly a secret pasted where its variable's name belongs,
            # so the entry itself is not shown.
            raise self.fail(
                name,
                "<hidden>",
                f"entry {index} is not an environment variable name: list the"
                " names of the variables that hold the secrets",
            )
        value = self.environ.get(variable)
        if value is None:
            raise self.fail(
                name, variable, f"environment variable {variable} is not set"
            )
        try:
            encoded = value.encode("utf-8")
        except UnicodeEncodeError:
            raise self.fail(
                name, variable, f"environment variable {variable} is not UTF-8 text"
            ) from None
        problem = secret_problem(value)
        if problem:
            raise self.fail(
                name, variable, f"environment variable {variable} {problem}"
            )
        return Secret(encoded, f"${variable}")


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# The user information of a URL such as postgresql://user:password@host/db.
_URL_PASSWORD = re.compile(r"^([a-z][a-z0-9+.-]*://[^:/@\s]*):[^@\s]*@", re.I)


def secret_problem(text: str) -> str | None:
    """Return why `text` cannot be a secret, or None when it can.

    A secret that is empty, or made only of spaces, control or invisible
    format characters (U+00A0, U+200B, NUL), looks blank to the operator
    who wrote it but matches a forger who sends the same invisible text.
    Surrounding white space would be invisible in the same way.
    """
    if not text:
        return "is empty"
    if all(unicodedata.category(char)[0] in "ZC" for char in text):
        return "has only white space, control or invisible characters"
    # Every character str.strip removes is in a Z or C category too.
    if any(unicodedata.category(char)[0] in "ZC" for char in (text[0], text[-1])):
        return "starts or ends with white space or an invisible character"
    return None
