"""orjson behind the ``json`` module interface python-socketio accepts (``AsyncServer(json=...)``).

A facemesh event is 478 points, ~26 KB of JSON; decoding them with the standard library was half
of the gateway's CPU under 10 clients at 30 Hz (py-spy). Non-finite floats encode as null.
"""

from __future__ import annotations

from typing import Any

import orjson


def dumps(obj: Any, **_: Any) -> str:
    return orjson.dumps(obj).decode()


def loads(s: str | bytes, **_: Any) -> Any:
    return orjson.loads(s)
