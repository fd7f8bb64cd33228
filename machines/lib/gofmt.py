"""Values as Go prints them, and the functions `docker-machine inspect --format` offers
(its `json` and `prettyjson`, and Go's text/template built-ins): for machines.lib.gotemplate.
The values are JSON's (dicts, lists, strings, numbers, booleans, null), as docker-machine
executed its templates on the host's JSON read back into Go maps."""

from __future__ import annotations

import json
import re
from decimal import Decimal


class TemplateError(ValueError):
    pass


# -- values as Go prints them ----------------------------------------------------------


def go_type(value) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "float64"
    if isinstance(value, str):
        return "string"
    return "[]interface {}" if isinstance(value, list) else "map[string]interface {}"


def go_float(value: float) -> str:
    """fmt's %v of a float64 (JSON numbers are float64 in Go): the shortest digits, in
    exponent form when the exponent is below -4 or at least 6 (1e+06, as Go prints)."""
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        return "NaN" if value != value else ("+Inf" if value > 0 else "-Inf")
    if value == 0:
        return "0"
    sign, digits, exp = Decimal(repr(value)).normalize().as_tuple()
    text = "".join(map(str, digits))
    point = len(digits) + exp  # where the decimal point goes in `text`
    minus = "-" if sign else ""
    if not -4 <= point - 1 < 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{minus}{mantissa}e{point - 1:+03d}"
    if point <= 0:
        return f"{minus}0.{'0' * -point}{text}"
    if len(text) <= point:
        return f"{minus}{text}{'0' * (point - len(text))}"
    return f"{minus}{text[:point]}.{text[point:]}"


def go_print(value, top: bool = True) -> str:
    if value is None:
        return "<no value>" if top else "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return go_float(value)
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "[" + " ".join(go_print(v, False) for v in value) + "]"
    return "map[" + " ".join(f"{k}:{go_print(value[k], False)}" for k in sorted(value)) + "]"


def truth(value) -> bool:
    return bool(value) if value is not None else False


def go_json(value, indent: int | None = None) -> str:
    """encoding/json: keys sorted, <, > and & escaped as \\u003c ..., integral floats bare."""
    text = json.dumps(value, sort_keys=True, indent=indent, ensure_ascii=False)
    if indent is None:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(char, escaped)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


# -- functions: docker-machine's two and Go's built-ins ---------------------------------


def _sprint(*args) -> str:
    # fmt.Sprint: a space between operands when neither is a string.
    out = ""
    for i, arg in enumerate(args):
        if i and not isinstance(arg, str) and not isinstance(args[i - 1], str):
            out += " "
        out += go_print(arg, False)
    return out


def _printf(fmt: str, *args) -> str:
    """fmt.Sprintf for the verbs templates use: %v %s %d %q %t %%."""
    values = iter(args)

    def one(m: re.Match) -> str:
        verb = m[1]
        if verb == "%":
            return "%"
        value = next(values, None)
        if verb == "q":
            return go_json(value if isinstance(value, str) else go_print(value, False))
        if verb == "d" and isinstance(value, int | float) and float(value).is_integer():
            return str(int(value))
        return go_print(value, False)

    return re.sub(r"%([vsdqt%])", one, fmt)


def _index(value, *keys):
    for key in keys:
        try:
            value = value[key if isinstance(value, dict) else int(key)]
        except (KeyError, IndexError, TypeError, ValueError):
            raise TemplateError(f"error calling index: cannot index with {go_print(key)}") from None
    return value


def _compare(op):
    def compare(a, b):
        try:
            return op(a, b)
        except TypeError:
            raise TemplateError("error calling comparison: incompatible types") from None

    return compare


FUNCTIONS = {
    "json": (1, go_json),
    "prettyjson": (1, lambda v: go_json(v, indent=4)),
    "print": (None, _sprint),
    "println": (None, lambda *a: " ".join(go_print(v, False) for v in a) + "\n"),
    "printf": (None, _printf),
    "len": (1, len),
    "index": (None, _index),
    "not": (1, lambda v: not truth(v)),
    "and": (None, lambda *a: next((v for v in a if not truth(v)), a[-1] if a else None)),
    "or": (None, lambda *a: next((v for v in a if truth(v)), a[-1] if a else None)),
    "eq": (None, lambda a, *bs: any(a == b for b in bs)),
    "ne": (2, _compare(lambda a, b: a != b)),
    "lt": (2, _compare(lambda a, b: a < b)),
    "le": (2, _compare(lambda a, b: a <= b)),
    "gt": (2, _compare(lambda a, b: a > b)),
    "ge": (2, _compare(lambda a, b: a >= b)),
}


def call(name: str, args: list):
    wanted, fn = FUNCTIONS[name]
    if wanted is not None and len(args) != wanted:
        raise TemplateError(f"wrong number of args for {name}: want {wanted} got {len(args)}")
    try:
        return fn(*args)
    except TypeError as e:
        raise TemplateError(f"error calling {name}: {e}") from None
