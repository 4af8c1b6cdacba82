"""Reading untrusted JSON bodies, and checking a decoded value before it reaches PostgreSQL.

Python's json reads more than PostgreSQL stores: NaN and Infinity (and 1e400, which becomes Infinity),
NUL characters (neither text nor jsonb columns hold them) and unpaired UTF-16 surrogates ("\\ud800",
which JSON may escape but UTF-8 cannot hold). Each would fail the insert with a DataError, a 500; a
caller checks first and answers 400 naming the field. Used by the Optimove listener and the provider
callbacks of apps.delivery."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

# Webhook and listener bodies are flat objects with the odd nested object; anything much deeper is
# refused before it reaches json.dumps and the JSON column, which have recursion limits of their own.
MAX_JSON_DEPTH = 32


def text_unstorable(text: str) -> str | None:
    """Why PostgreSQL could not store `text` ("holds ..."), or None. Never quotes the text (it may be a
    secret or personal data)."""
    if "\x00" in text:
        return "holds a NUL character, which cannot be stored"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "holds an unpaired UTF-16 surrogate, which is not text"
    return None


class JsonBodyInvalid(ValueError):
    """The body is not JSON we can read; the message says why, for a 400."""


def json_body_load(body: bytes) -> Any:
    """The decoded body. Raises JsonBodyInvalid for what json.loads refuses, including the errors that
    are no JSONDecodeError: an integer of more than 4300 digits (ValueError) and nesting deeper than
    the parser goes (RecursionError, from 5,000 "[")."""
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise JsonBodyInvalid("the body must be JSON") from None
    except ValueError:
        raise JsonBodyInvalid("the body must be JSON with numbers of a readable size") from None
    except RecursionError:
        raise JsonBodyInvalid("the body must be JSON nested less deeply") from None


def unstorable_problem(value: Any, *, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """What in a decoded JSON value (keys included) PostgreSQL could not store, or None; nesting deeper
    than `max_depth` counts too. The message names the top-level field (or list item) it is under.
    Walked without recursion, so a deep value cannot exhaust the stack here."""
    # Each item with how its top-level field is shown in a message (None: the value itself).
    pending: list[tuple[Any, str | None, int]] = [(value, None, 0)]
    while pending:
        item, field, depth = pending.pop()
        if depth > max_depth:
            return f"the body is nested more than {max_depth} levels deep"
        if isinstance(item, str):
            if (problem := text_unstorable(item)) is not None:
                return f"{field or 'the body'} {problem.split(',')[0]}"
        elif isinstance(item, float) and not math.isfinite(item):
            return f"{field or 'the body'} holds a number JSON cannot carry (NaN or Infinity)"
        elif isinstance(item, Mapping):
            for key, child in item.items():
                name = _shown(str(key)) if field is None else field
                pending.append((child, name, depth + 1))
                pending.append((key, name, depth + 1))
        elif isinstance(item, list | tuple):
            for index, child in enumerate(item):
                pending.append((child, f"item {index}" if field is None else field, depth + 1))
    return None


def _shown(key: str) -> str:
    """A key for an error message, short; repr() escapes NUL, controls and surrogates."""
    return repr(key[:40])
