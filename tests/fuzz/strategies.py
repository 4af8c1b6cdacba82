"""Hostile values shared by the fuzz tests: text PostgreSQL cannot store, numbers JSON cannot carry,
wrong types, and ways to spoil a body on the wire."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

# Every code point, lone surrogates (category Cs) and NUL included: hypothesis leaves surrogates out
# unless asked, and they are exactly what a JSON "\ud800" escape produces.
any_char = st.characters(exclude_categories=())

# Values that have each broken something somewhere: PostgreSQL's text and JSON columns refuse NUL and
# unpaired surrogates; str.isdigit() accepts "²" (int() does not) and other scripts' digits.
NASTY_STRINGS = (
    "",
    " ",
    "\x00",
    "a\x00b",
    "\ud800",
    "\udfff",
    "x\ud83d",
    "²",
    "٣",
    "\U0001d7d9\U0001d7da",  # mathematical digits
    "-",
    "--1",
    "+1",
    "1e3",
    "0x1F",
    " 13 ",
    "13.0",
    "NaN",
    "Infinity",
    "null",
    "true",
    "\u202e13",
    "\uff19",  # a full-width 9
    "{{ 7 * 7 }}",
    "<script>alert(1)</script>",
    "'; DROP TABLE campaigns_message; --",
    "%s%s%n",
    "9" * 25,
    "-" + "9" * 25,
    "2026-13-45 25:61:61",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "9999-12-31 23:59:59",
)
nasty_text = st.one_of(st.sampled_from(NASTY_STRINGS), st.text(any_char, max_size=40))

NASTY_INTEGERS = (
    0,
    -1,
    2**31 - 1,
    2**31,
    -(2**31) - 1,
    2**63 - 1,
    2**63,
    -(2**63) - 1,
    2**64,
    10**30,
    -(10**30),
    10**4000,  # int() of its text still works (4001 digits); one more digit and it does not
)
nasty_integers = st.one_of(st.sampled_from(NASTY_INTEGERS), st.integers())
nasty_floats = st.one_of(
    st.sampled_from((float("nan"), float("inf"), float("-inf"), 1e308, -0.0, 13.0, 13.5, 5e-324)),
    st.floats(allow_nan=True, allow_infinity=True),
)
scalars = st.one_of(st.none(), st.booleans(), nasty_integers, nasty_floats, nasty_text)


# What PostgreSQL can store: for the endpoints of apps/delivery, whose known failures on the rest are
# pinned as strict xfails in tests/fuzz/test_webhooks_fuzz.py (when they are fixed, use the full
# strategies above there too).
storable_char = st.characters(exclude_categories=("Cs",), exclude_characters="\x00")
STORABLE_STRINGS = tuple(
    text
    for text in NASTY_STRINGS
    if "\x00" not in text
    and not any(0xD800 <= ord(char) <= 0xDFFF for char in text)
    # Well-formed ISO times out of the calendar (month 13, or leaving it when converted to UTC).
    and not text.startswith(("2026-13", "0001-", "9999-"))
)
storable_text = st.one_of(st.sampled_from(STORABLE_STRINGS), st.text(storable_char, max_size=40))
storable_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from(NASTY_INTEGERS),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    storable_text,
)


def json_values(
    max_leaves: int = 20,
    *,
    leaves: st.SearchStrategy[Any] = scalars,
    keys: st.SearchStrategy[str] = nasty_text,
) -> st.SearchStrategy[Any]:
    """Any JSON-ish value: nested lists and objects of hostile scalars, keys hostile too."""
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=5), st.dictionaries(keys, children, max_size=5)
        ),
        max_leaves=max_leaves,
    )


def storable_json_values(max_leaves: int = 20) -> st.SearchStrategy[Any]:
    return json_values(max_leaves, leaves=storable_scalars, keys=storable_text)


def encoded(value: Any, *, ascii_only: bool) -> bytes:
    """`value` as JSON on the wire. NaN and Infinity are written as Python writes them (not JSON, but
    json.loads reads them); with `ascii_only` False a lone surrogate is written as raw (invalid) UTF-8."""
    text = json.dumps(value, ensure_ascii=ascii_only, allow_nan=True)
    return text.encode("utf-8", "surrogatepass")


def json_numbers_exact(value: Any) -> Any:
    """`value` with every number as a Decimal: PostgreSQL's JSON column keeps numbers as exact decimals
    and gives 1e308 back as an integer of 309 digits, the same number in another spelling."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if isinstance(value, list):
        return [json_numbers_exact(item) for item in value]
    return {key: json_numbers_exact(item) for key, item in value.items()}


def deep(levels: int) -> bytes:
    """A body nested `levels` deep: valid JSON that a recursive parser or serializer may not survive."""
    return b'{"a":' * levels + b"1" + b"}" * levels


# Ways a body arrives spoiled; each yields bytes.
NON_UTF8_ENCODINGS = ("utf-16", "utf-16-be", "utf-32", "latin-1", "cp1252", "shift_jis")


@st.composite
def spoiled(draw: st.DrawFn, valid: bytes) -> bytes:
    """A spoiled version of a valid JSON body: cut short, re-encoded, with junk bytes, or replaced."""
    how = draw(st.sampled_from(("truncated", "reencoded", "junk", "binary", "bom", "deep", "huge-int")))
    if how == "truncated":
        return valid[: draw(st.integers(0, max(len(valid) - 1, 0)))]
    if how == "reencoded":
        encoding = draw(st.sampled_from(NON_UTF8_ENCODINGS))
        # A non-ASCII value so latin-1 and friends differ from UTF-8 too.
        return (
            valid.decode("utf-8", "replace")
            .replace("}", ', "Name": "Zoë 日本"}', 1)
            .encode(encoding, "replace")
        )
    if how == "junk":
        at = draw(st.integers(0, len(valid)))
        return valid[:at] + draw(st.binary(min_size=1, max_size=8)) + valid[at:]
    if how == "bom":
        return b"\xef\xbb\xbf" + valid
    if how == "deep":
        return deep(draw(st.integers(900, 20_000)))
    if how == "huge-int":
        return b'{"EventTypeID": ' + b"1" * draw(st.integers(4301, 6000)) + b"}"
    return draw(st.binary(max_size=200))


CONTENT_TYPES = (
    "application/json",
    "application/json; charset=utf-16",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=fuzz",
    "application/octet-stream",
    "",
)
content_types = st.sampled_from(CONTENT_TYPES)
