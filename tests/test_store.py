"""The content hash's canonical JSON: one text per value, whichever serializer wrote it."""

import hashlib
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from archiver.store import canonical_json, content_hash, slow_canonical_json

# Text of every kind but lone surrogates (orjson refuses them): control characters, NUL, DEL,
# U+2028, quotes and backslashes, non-ASCII of every plane.
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)  # what orjson encodes
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from([1e-05, 1e21, -0.0, 0.0, 1.0, 1e-7, 1e16, 5e-324, 1.7976931348623157e308, 0.1])
    | TEXT
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(TEXT, inner, max_size=5),
    max_leaves=25,
)


@settings(max_examples=500, deadline=None)
@given(VALUES)
def test_the_slow_serializer_writes_what_orjson_writes(value: Any) -> None:
    """canonical_json falls back to slow_canonical_json for what orjson refuses; a job's hash must
    not change with the path taken, so both must write the same text for everything orjson takes."""
    fast = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    assert slow_canonical_json(value).encode() == fast  # byte for byte: what the hash is taken of
    assert canonical_json(value).encode() == fast


# The canonical form, written out by hand: keys sorted by code point, no whitespace, UTF-8 with
# only '"', '\\' and control characters escaped (\b \t \n \f \r by name, others \u00XX, lone
# surrogates \udXXX), integers in full, floats in the shortest text that reads back the same value,
# with '.0' on whole numbers and an exponent from 1e16 and below 1e-4 (orjson's, not ECMAScript's).
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
    '{"hyperparameters":{"big":1e+21,"learning_rate_multiplier":0.00001,"n_epochs":3,"x":-0.0},'
    '"id":"ftjob-1","métadonnées":{"a":"tab\\tnul\\u0000esc\\u001b\x7f \\"q\\" \\\\","z":"日本語\u2028"},'
    '"seed":18446744073709551615,"status":"succeeded","tags":[true,false,null,1e+16,0.1,1e-7],'
    '"trained_tokens":1.0}'
)


def test_a_jobs_hash_is_the_sha256_of_the_documented_canonical_form() -> None:
    assert canonical_json(JOB) == CANONICAL
    assert content_hash(JOB) == hashlib.sha256(CANONICAL.encode()).hexdigest()


def test_values_orjson_refuses_take_the_same_canonical_form() -> None:
    """Beyond 64 bits and lone surrogates: the slow path, in the same form."""
    job = {**JOB, "seed": 2**64, "status": "lone \ud800 surrogate"}
    expected = CANONICAL.replace("18446744073709551615", "18446744073709551616").replace(
        '"succeeded"', '"lone \\ud800 surrogate"'
    )
    assert canonical_json(job) == expected
    assert content_hash(job) == hashlib.sha256(expected.encode()).hexdigest()
