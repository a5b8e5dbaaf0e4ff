"""The content hash: RFC 8785 canonical JSON of what a job means, one text per value, whatever wrote it."""

import hashlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archiver.canonical import canonical_json, flat_canonical_json, slow_canonical_json
from archiver.store import content_hash

# Text of every kind: control characters, NUL, DEL, U+2028, quotes and backslashes, non-ASCII of
# every plane, lone surrogates (which orjson refuses).
TEXT = st.text(max_size=12)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)  # beyond 2^53 a number is the double it rounds to
    | st.floats()
    | st.sampled_from([1e-05, 1e21, -0.0, 0.0, 1.0, 1e-7, 1e16, 5e-324, 1.7976931348623157e308, 0.1, 10**400])
    | TEXT
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(TEXT, inner, max_size=5),
    max_leaves=25,
)


@settings(max_examples=500, deadline=None)
@given(VALUES)
def test_the_fast_canonical_json_writes_what_the_plain_definition_writes(value: Any) -> None:
    """canonical_json has orjson write most of it; a job's hash must not change with the path taken."""
    assert canonical_json(value).encode() == slow_canonical_json(value).encode()


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(TEXT, SCALARS | st.floats(-1e17, 1e17) | st.lists(SCALARS, max_size=2), max_size=8))
def test_the_flat_canonical_json_of_audit_records_writes_what_the_plain_definition_writes(
    value: dict[str, Any],
) -> None:
    assert flat_canonical_json(value).encode() == slow_canonical_json(value).encode()


# Numbers as node 20 (ECMAScript) writes them with String(x): RFC 8785's number serialization.
ECMASCRIPT = {
    0.0: "0",  # and -0.0, the same key here: JOB below holds it
    5e-324: "5e-324",
    -5e-324: "-5e-324",
    1.7976931348623157e308: "1.7976931348623157e+308",
    9007199254740992: "9007199254740992",
    -9007199254740992: "-9007199254740992",
    295147905179352830000: "295147905179352830000",
    9.999999999999997e22: "9.999999999999997e+22",
    1e23: "1e+23",
    0.000001: "0.000001",
    9.999999999999997e-7: "9.999999999999997e-7",
    1e-7: "1e-7",
    333333333.3333333: "333333333.3333333",
    1e21: "1e+21",
    999999999999999900000: "999999999999999900000",
    2.0: "2",
    1e-05: "0.00001",
    0.1: "0.1",
    1e16: "10000000000000000",
    2**60: "1152921504606847000",
    2.5e-6: "0.0000025",
    1.5e20: "150000000000000000000",
    123e-20: "1.23e-18",
}


@pytest.mark.parametrize("number", list(ECMASCRIPT))
def test_numbers_are_written_as_ecmascript_writes_their_double(number: float) -> None:
    assert canonical_json([number]) == f"[{ECMASCRIPT[number]}]"
    assert slow_canonical_json([number]) == f"[{ECMASCRIPT[number]}]"


def test_the_rfc_8785_examples_take_their_canonical_form() -> None:
    """RFC 8785 3.2.2 (numbers, literals, string escapes) and 3.2.3 (keys sorted by UTF-16 code unit)."""
    sample = json.loads(
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
        ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        ' "literals": [null, true, false]}'
    )
    assert canonical_json(sample) == (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    keys = json.loads(
        '{"\\u20ac": "Euro Sign", "\\r": "Carriage Return", "\\ufb33": "Hebrew Letter Dalet With Dagesh",'
        ' "1": "One", "\\ud83d\\ude00": "Emoji: Grinning Face", "\\u0080": "Control", "\\u00f6": "Latin Small'
        ' Letter O With Diaeresis"}'
    )
    assert [k for k in json.loads(canonical_json(keys))] == ["\r", "1", "\x80", "ö", "€", "😀", "\ufb33"]


# The canonical form, written out by hand: keys sorted by UTF-16 code unit, no whitespace, UTF-8 with
# only '"', '\\' and control characters escaped (\b \t \n \f \r by name, others \u00XX, lone
# surrogates \udXXX), numbers as ECMAScript writes the double they are (RFC 8785).
JOB = {
    "id": "ftjob-1",
    "status": "succeeded",
    "métadonnées": {"z": "日本語\u2028", "a": 'tab\tnul\x00esc\x1b\x7f "q" \\'},
    "hyperparameters": {"learning_rate_multiplier": 0.00001, "n_epochs": 3, "big": 1e21, "x": -0.0},
    "trained_tokens": 1.0,
    "seed": 2**64 - 1,
    "tags": [True, False, None, 1e16, 0.1, 1e-7],
}
CANONICAL = (
    '{"hyperparameters":{"big":1e+21,"learning_rate_multiplier":0.00001,"n_epochs":3,"x":0},'
    '"id":"ftjob-1","métadonnées":{"a":"tab\\tnul\\u0000esc\\u001b\x7f \\"q\\" \\\\","z":"日本語\u2028"},'
    '"seed":18446744073709552000,"status":"succeeded","tags":[true,false,null,10000000000000000,0.1,1e-7],'
    '"trained_tokens":1}'
)


def test_a_jobs_hash_is_the_sha256_of_the_documented_canonical_form() -> None:
    assert canonical_json(JOB) == CANONICAL
    assert content_hash(JOB) == hashlib.sha256(CANONICAL.encode()).hexdigest()


def test_values_orjson_refuses_take_the_same_canonical_form() -> None:
    """Beyond 64 bits and lone surrogates: the slow path, in the same form."""
    job = {**JOB, "seed": 2**64, "status": "lone \ud800 surrogate", "huge": 10**400}
    expected = CANONICAL.replace("{", '{"huge":null,', 1).replace(
        '"succeeded"', '"lone \\ud800 surrogate"'
    )  # 2^64 and 2^64 - 1 are the same double; 10^400 is none (JSON.parse reads Infinity)
    assert canonical_json(job) == expected
    assert content_hash(job) == hashlib.sha256(expected.encode()).hexdigest()
