"""RFC 8785 canonical JSON (the JSON Canonicalization Scheme): the one text of a JSON value that
content hashes are taken of (store.content_hash), whatever serializer wrote the JSON it was read from."""

import json
import math
from typing import Any

import orjson

SAFE = 2**53  # integers up to here are exact as doubles; beyond, JSON numbers are compared as doubles
AS_IS = frozenset((str, type(None), bool, int))  # orjson writes these as RFC 8785 does (int: to SAFE)


def canonical_json(value: Any) -> str:
    """The one JSON text of a value, RFC 8785 (JSON Canonicalization Scheme): keys sorted by UTF-16
    code units, no whitespace, UTF-8 with only '"', '\\' and control characters escaped (lone
    surrogates as \\udXXX, as JavaScript's JSON.stringify), every number written as ECMAScript writes
    the double it is (`2.0` and `2` -> `2`, `1e-05` -> `0.00001`, `1e21` -> `1e+21`), so one value has
    one text whichever serializer wrote the JSON it was read from. Beyond RFC 8785 (which has no text
    for them): NaN, infinities and integers beyond a double's range are `null`, as JSON.stringify
    writes what JSON.parse reads of them. orjson writes it when given numbers it writes that way
    (`jcs_numbers`); `slow_canonical_json` is the plain definition (tests compare them)."""
    try:
        return orjson.dumps(jcs_numbers(value), option=orjson.OPT_SORT_KEYS).decode()
    except (TypeError, NonAsciiKey):  # lone surrogates, non-string keys, keys orjson would sort otherwise
        return slow_canonical_json(value)


def flat_canonical_json(members: dict[str, Any]) -> str:
    """canonical_json of a flat object with ASCII keys (an audit record, archiver/chain.py),
    faster: orjson writes it, with each fractional number from 1e-4 to 1e16 as Python's repr
    (there repr and ECMAScript both write the shortest digits that read back, without exponent);
    anything else takes canonical_json's path."""
    flat = {}
    for key, value in members.items():
        kind = type(value)
        if kind is float:
            fixed = 1e-4 <= abs(value) < 1e16 and not value.is_integer()
            value = orjson.Fragment(repr(value) if fixed else number(value))
        elif not (kind in AS_IS and (kind is not int or -SAFE <= value <= SAFE)) or not key.isascii():
            return canonical_json(members)
        flat[key] = value
    try:
        return orjson.dumps(flat, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:  # a lone surrogate
        return canonical_json(members)


class NonAsciiKey(Exception):
    """orjson sorts keys by code point, RFC 8785 by UTF-16 code unit: they differ beyond ASCII."""


def jcs_numbers(value: Any) -> Any:
    """`value` with each number that orjson would not write as RFC 8785 does replaced by its text."""
    kind = type(value)
    if kind is dict:
        if not "".join(value).isascii():
            raise NonAsciiKey
        # members orjson writes as RFC 8785 does are kept (tested inline: a call for each costs)
        return {
            k: v if type(v) in AS_IS and not (type(v) is int and not -SAFE <= v <= SAFE) else jcs_numbers(v)
            for k, v in value.items()
        }
    if kind is list or kind is tuple:
        return [
            v if type(v) in AS_IS and not (type(v) is int and not -SAFE <= v <= SAFE) else jcs_numbers(v)
            for v in value
        ]
    if kind is float:
        return int(value) if value.is_integer() and -SAFE <= value <= SAFE else orjson.Fragment(number(value))
    if kind is int and not -SAFE <= value <= SAFE:
        return orjson.Fragment(number(value))
    return value


def slow_canonical_json(value: Any) -> str:
    if isinstance(value, dict):
        members = sorted(((str(k), v) for k, v in value.items()), key=utf16)
        return "{" + ",".join(f"{slow_canonical_json(k)}:{slow_canonical_json(v)}" for k, v in members) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(slow_canonical_json(v) for v in value) + "]"
    if isinstance(value, str):
        escaped = json.dumps(value, ensure_ascii=False)
        return "".join(f"\\u{ord(c):04x}" if "\ud800" <= c <= "\udfff" else c for c in escaped)
    if value is None or isinstance(value, bool):
        return orjson.dumps(value).decode()
    return number(value)


def utf16(member: tuple[str, Any]) -> bytes:
    return member[0].encode("utf-16-be", "surrogatepass")


def number(value: int | float) -> str:
    """ECMAScript's Number::toString of the double `value` is (RFC 8785 3.2.2.3); null for none."""
    try:
        x = float(value)
    except OverflowError:
        return "null"
    if x != x or x in (math.inf, -math.inf):
        return "null"
    if x == 0:
        return "0"
    sign, text = ("-", repr(-x)) if x < 0 else ("", repr(x))  # repr: the shortest digits that read back
    mantissa, _, exp = text.partition("e")
    whole, _, fraction = mantissa.partition(".")
    significant = (whole + fraction).lstrip("0")
    digits = significant.rstrip("0")
    k = len(digits)
    n = int(exp or 0) - len(fraction) + len(significant)  # x = 0.digits * 10^n
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * -n + digits
    e = n - 1
    return f"{sign}{digits[0]}{'.' if k > 1 else ''}{digits[1:]}e{'+' if e >= 0 else '-'}{abs(e)}"
