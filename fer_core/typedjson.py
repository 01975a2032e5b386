"""A JSON object read by type against a schema (no Streamlit). What is read from a run directory (fer_core.runfiles)
is checked here and only here: a run folder is a file anyone can edit, and one wrong-typed field must not take down
a page that lists every run. A field of the wrong type is left out (so .get() gives None or its default) and named
in a one-line problem."""
from __future__ import annotations

import json
from pathlib import Path

INT, FLOAT, STR, BOOL, DICT, LIST = "an integer", "a number", "a string", "true/false", "an object", "a list"


def fits(v, kind) -> bool:
    if isinstance(kind, dict):
        return isinstance(v, dict)
    if kind == INT:
        return isinstance(v, int) and not isinstance(v, bool)
    if kind == FLOAT:
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    return isinstance(v, {STR: str, BOOL: bool, DICT: dict, LIST: list}[kind])


def _kind_name(kind) -> str:
    return DICT if isinstance(kind, dict) else kind


def _type_name(v) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null",
            int: "an integer", float: "a number"}.get(type(v), type(v).__name__)


def typed(obj: dict, schema: dict, where: str) -> tuple[dict, list[str]]:
    """(a copy of `obj` without the fields of `schema` whose value is of the wrong type, the problems found).
    A kind that is itself a dict is a nested schema; null is accepted everywhere (an optional field) and left
    out too, so that .get(key, default) gives the default."""
    out, problems = dict(obj), []
    for key, kind in schema.items():
        if key not in out:
            continue
        if out[key] is None:
            del out[key]
            continue
        v = out[key]
        if not fits(v, kind):
            del out[key]
            problems.append(f"{where}: {key!r} is {_type_name(v)}, not {_kind_name(kind)}")
        elif isinstance(kind, dict):
            out[key], sub = typed(v, kind, f"{where} {key}")
            problems += sub
    return out, problems


def read_json_checked(path) -> tuple[dict, str | None]:
    """(object, problem): ({}, None) when the file does not exist; ({}, one line) when it cannot be read, does
    not parse or is not a JSON object."""
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        return {}, None
    except (OSError, UnicodeDecodeError) as e:
        return {}, f"{p.name} cannot be read ({getattr(e, 'strerror', None) or e.__class__.__name__})"
    try:
        obj = json.loads(text)
    except ValueError:
        return {}, f"{p.name} is not valid JSON"
    if not isinstance(obj, dict):
        return {}, f"{p.name} holds {_type_name(obj)}, not an object"
    return obj, None
