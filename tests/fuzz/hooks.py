"""Schemathesis hooks for the devpipe gateway (loaded through SCHEMATHESIS_HOOKS by tests/e2e/fuzz.test.ts).

The ingest routes (`POST /v1/events`, `POST /v1/events/{type}`) also accept `application/x-ndjson`: one JSON
value per line. Schemathesis has no serializer for that media type, so without this file it would skip every
NDJSON test case. The OpenAPI document describes the NDJSON body as a string (the raw text of the body):

- a string is sent as is, UTF-8 encoded: those are the positive cases, and the coverage phase's edge cases
  (empty body, very long lines, odd Unicode);
- any other value (negative cases: numbers, booleans, null, objects, arrays) is sent as NDJSON would carry it:
  one JSON line per array item, one JSON line for anything else. None of these is a valid string, so the
  gateway must answer them with a 4xx, and negative_data_rejection checks it does.
"""

from __future__ import annotations

import json
from typing import Any

import schemathesis

NDJSON = "application/x-ndjson"


def _line(value: Any) -> str:
    # allow_nan=False would raise on NaN; the generator does not produce NaN for JSON schemas, but be explicit.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@schemathesis.serializer(NDJSON)
def ndjson_serializer(ctx: schemathesis.SerializationContext, value: Any) -> bytes:
    if isinstance(value, str):
        # surrogatepass: a lone surrogate the generator may produce reaches the server as the (invalid)
        # UTF-8 bytes a careless client would send, rather than crashing the serializer.
        return value.encode("utf-8", "surrogatepass")
    if isinstance(value, bytes):
        return value
    if isinstance(value, list):
        return "".join(_line(item) + "\n" for item in value).encode("utf-8", "surrogatepass")
    return (_line(value) + "\n").encode("utf-8", "surrogatepass")
