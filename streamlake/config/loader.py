"""One loader for YAML config: `yaml.safe_load` into typed models that reject unknown keys.

Every error names the file, the key path and what was expected, e.g.

    conf/platform.yaml: kafka.port: expected an integer, got 'ninety'
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

M = TypeVar("M", bound=BaseModel)

_ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")


class ConfigError(Exception):
    """A config file is wrong. The message says where and what was expected."""

    def __init__(self, file: Path | str, key_path: str, expected: str) -> None:
        self.file = str(file)
        self.key_path = key_path
        self.expected = expected
        where = f"{self.file}: {key_path}" if key_path else self.file
        super().__init__(f"{where}: {expected}")


def matching(pattern: re.Pattern[str], expected: str) -> AfterValidator:
    """A string field's check: it matches `pattern`, or the error says `expected`
    (use as `Annotated[str, matching(...)]`)."""

    def check(v: str) -> str:
        if not pattern.match(v):
            raise ValueError(expected)
        return v

    return AfterValidator(check)


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors, values are not coerced loosely."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


def _key_path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _describe(err: Any) -> str:
    kind = err["type"]
    got = err.get("input")
    if kind == "extra_forbidden":
        return "unknown key (check the spelling; allowed keys are the model's fields)"
    if kind == "missing":
        return "required key is missing"
    msg = str(err["msg"])
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    return f"expected {msg[0].lower() + msg[1:]}, got {got!r}" if got is not None else msg


def parse(model: type[M], data: Any, file: Path | str) -> M:
    """Validate already-loaded data; raise ConfigError naming the first wrong key."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        # Pydantic reports union members with their type names in the loc; keep the key path.
        loc = tuple(p for p in first["loc"] if not (isinstance(p, str) and "[" in p))
        raise ConfigError(file, _key_path(loc), _describe(first)) from None


def check_named_after_file(path: Path, key: str, value: str) -> None:
    """One file per named thing (an event type, a tenant, an aggregate, a rule): its name is the
    file's stem."""
    if value != path.stem:
        raise ConfigError(path, key, f"the file name's stem {path.stem!r}, got {value!r}")


def load(model: type[M], path: Path) -> M:
    """Load one YAML file into `model`."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(path, "", "file not found") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        raise ConfigError(path, "", f"not valid YAML ({where}): {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            path, "", f"expected a mapping at the top level, got {type(data).__name__}"
        )
    return parse(model, data, path)


def resolve_secret(value: str, file: Path | str, key_path: str) -> str:
    """Resolve a `${env:NAME}` reference. Secrets are references in YAML, never values."""
    m = _ENV_REF.fullmatch(value)
    if not m:
        raise ConfigError(file, key_path, f"expected a reference like ${{env:NAME}}, got {value!r}")
    name = m.group(1)
    if name not in os.environ:
        raise ConfigError(file, key_path, f"environment variable {name} is not set")
    return os.environ[name]
