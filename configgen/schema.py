"""A small, strict reader for typed settings, with messages that name the key.

A section of settings is a frozen dataclass. Each field is declared with `setting(default, spec)`
(a value checked by `spec`) or `section(cls)` (a nested section). `load(cls, data)` turns the
mapping read from YAML into an instance, or raises `Invalid` naming the key path and what is
wrong, e.g. `mlflow.workers: expected an integer >= 1, got 'two'`.

Specs only check and convert values; rules that involve several settings live with the
sections in `stack.py`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any


class Invalid(Exception):
    """A setting is wrong. `key` is its dotted path (`mlflow.workers`, `hosts[1]`)."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}" if key else problem)
        self.key = key
        self.problem = problem


def show(value: Any) -> str:
    """How a value read from YAML is quoted back in a message."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class Spec:
    """What a setting accepts. Subclasses set `what` and may override `convert`."""

    what = "a value"

    def parse(self, value: Any, key: str) -> Any:
        try:
            return self.convert(value)
        except _Reject as reject:
            raise Invalid(
                key, reject.problem or f"expected {self.what}, got {show(value)}"
            ) from None

    def convert(self, value: Any) -> Any:
        return value


class _Reject(Exception):
    """Raised inside `convert`; an empty problem means "expected <what>, got <value>"."""

    def __init__(self, problem: str = "") -> None:
        self.problem = problem


@dataclass(frozen=True)
class Int(Spec):
    min: int | None = None
    max: int | None = None

    @property
    def what(self) -> str:  # type: ignore[override]
        if self.min is not None and self.max is not None:
            return f"an integer from {self.min} to {self.max}"
        if self.min is not None:
            return f"an integer >= {self.min}"
        return "an integer"

    def convert(self, value: Any) -> int:
        # bool is a subclass of int in Python; `workers: yes` is not a number.
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Reject()
        if (self.min is not None and value < self.min) or (
            self.max is not None and value > self.max
        ):
            raise _Reject()
        return value


@dataclass(frozen=True)
class Text(Spec):
    """A string matching `pattern` in full, then passing `check` (which returns a problem)."""

    pattern: str = r".+"
    what: str = "a non-empty string"  # type: ignore[assignment]
    check: Callable[[str], str | None] | None = None

    def convert(self, value: Any) -> str:
        if not isinstance(value, str) or not re.fullmatch(self.pattern, value):
            raise _Reject()
        if self.check is not None and (problem := self.check(value)):
            raise _Reject(problem)
        return value


@dataclass(frozen=True)
class ListOf(Spec):
    """A list of items, returned as a tuple; duplicates are refused."""

    item: Spec = field(default_factory=Text)
    min_items: int = 0

    @property
    def what(self) -> str:  # type: ignore[override]
        return f"a list of {self.item.what}"

    def parse(self, value: Any, key: str) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise Invalid(key, f"expected {self.what}, got {show(value)}")
        if len(value) < self.min_items:
            raise Invalid(
                key, f"expected at least {self.min_items} of {self.item.what}, got {len(value)}"
            )
        items = tuple(self.item.parse(item, f"{key}[{i}]") for i, item in enumerate(value))
        for i, item in enumerate(items):
            if item in items[:i]:
                raise Invalid(f"{key}[{i}]", f"{show(item)} is listed twice")
        return items


def setting(default: Any, spec: Spec) -> Any:
    """Declare a dataclass field holding one setting."""
    return field(default=default, metadata={"spec": spec})


def section(cls: type) -> Any:
    """Declare a dataclass field holding a nested section of settings."""
    return field(default_factory=cls, metadata={"section": cls})


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def load(cls: type, data: Any, key: str = "") -> Any:
    """Build the section `cls` from `data`; missing keys take their defaults."""
    if not isinstance(data, dict):
        raise Invalid(key, f"expected a mapping of settings, got {show(data)}")
    known = {f.name: f for f in fields(cls)}
    for name in data:
        if name not in known:
            hint = difflib.get_close_matches(str(name), list(known), n=1)
            advice = f"did you mean '{hint[0]}'?" if hint else "known keys: " + ", ".join(known)
            raise Invalid(_join(key, str(name)), f"unknown key ({advice})")
    values = {}
    for name, f in known.items():
        if name not in data:
            continue
        if "section" in f.metadata:
            values[name] = load(f.metadata["section"], data[name], _join(key, name))
        else:
            values[name] = f.metadata["spec"].parse(data[name], _join(key, name))
    return cls(**values)
