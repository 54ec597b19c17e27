"""orjson behind the ``json`` module interface python-socketio accepts (``AsyncServer(json=...)``).

A facemesh event is 478 points, ~26 KB of JSON; decoding them with the standard library was half
of the gateway's CPU under 10 clients at 30 Hz (py-spy). Non-finite floats encode as null. What
orjson refuses but Python's json reads (NaN and Infinity literals, integers over 64 bits) is read
by Python's json, so such events still reach the gateway's validation and get a precise error.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def dumps(obj: Any, **_: Any) -> str:
    return orjson.dumps(obj).decode()


def loads(s: str | bytes, **_: Any) -> Any:
    try:
        return orjson.loads(s)
    except orjson.JSONDecodeError:
        return json.loads(s)
