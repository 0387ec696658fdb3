"""Pydantic's validation errors as the one line a user of a YAML file needs: the dotted key, what is accepted there,
and what was given. Works on any schema of pydantic models; config.py's is the one that uses it.
"""

from __future__ import annotations

from pathlib import Path
from types import NoneType, UnionType
from typing import Annotated, Any, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo


def first_error_line(root: type[BaseModel], error: ValidationError) -> str:
    """The first of `error`'s problems as one line: `where: expected <what is accepted>, got <what was given>`, or
    `unknown key 'where' (accepted here: ...)`. `where` is the dotted key (`pricing[0].model`); what is accepted is
    the field's description, else said from its type and bounds; a validator's ValueError is its own message."""
    first = error.errors(include_url=False)[0]
    loc = tuple(part for part in first["loc"] if part != "[key]")
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")
    section, annotation, details = _schema_at(root, loc)
    if first["type"] == "extra_forbidden":
        accepted = ", ".join(sorted(section.model_fields)) if section else "none"
        return f"unknown key '{where}' (accepted here: {accepted})"
    where = where or "the top level"
    if first["type"] in ("value_error", "assertion_error"):
        return f"{where}: {first['ctx']['error']}"
    got = "nothing" if first["type"] == "missing" else _shown(first["input"])
    return f"{where}: expected {_accepted(annotation, details)}, got {got}"


def _schema_at(root: type[BaseModel], loc: tuple[Any, ...]) -> tuple[type[BaseModel] | None, Any, list[Any]]:
    """What an error's location points at in the schema: the section (model) it is a key of, its type, and the
    constraints and descriptions attached to that type."""
    section: type[BaseModel] | None = None
    annotation: Any = root
    details: list[Any] = []
    for part in loc:
        annotation, details = _unwrapped(annotation, [])
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            section = annotation
            if (info := annotation.model_fields.get(str(part))) is None:
                return section, None, []
            annotation, details = info.annotation, [info, *info.metadata]
        else:
            annotation, details = (get_args(annotation) or (None,))[-1], []  # a list's item, a mapping's value
    annotation, details = _unwrapped(annotation, details)
    return section, annotation, details


def _unwrapped(annotation: Any, details: list[Any]) -> tuple[Any, list[Any]]:
    """`annotation` without `Annotated[...]` and `| None`, and what those carried."""
    while True:
        if get_origin(annotation) is Annotated:
            annotation, *extra = get_args(annotation)
            details = details + extra
        elif get_origin(annotation) in (Union, UnionType):
            annotation = next(arg for arg in get_args(annotation) if arg is not NoneType)
        else:
            return annotation, details


def _accepted(annotation: Any, details: list[Any]) -> str:
    infos = [d for d in details if isinstance(d, FieldInfo)]
    if description := next((i.description for i in infos if i.description), None):
        return description
    constraints = details + [c for i in infos for c in i.metadata]
    low = next((c.ge for c in constraints if isinstance(c, annotated_types.Ge)), None)
    high = next((c.le for c in constraints if isinstance(c, annotated_types.Le)), None)
    if annotation is bool:
        return "true or false"
    if annotation in (int, float) and low is not None and high is not None:
        return f"{'a whole number' if annotation is int else 'a number'} from {_plain(low)} to {_plain(high)}"
    if annotation in (str, Path):
        return f"a {annotation.__name__.lower()}"
    if get_origin(annotation) is list:
        return "a list"
    if get_origin(annotation) is dict or (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        return "a mapping"
    return "a value of another kind"


def _plain(number: Any) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)  # 10000000, not 1e+07


def _shown(value: Any) -> str:
    if value is None:
        return "nothing"
    return repr(value) if isinstance(value, str | int | float | bool) else type(value).__name__
