"""The gateway's Socket.IO JSON: orjson's speed, Python json's leniency where orjson refuses."""

from __future__ import annotations

import math

from sinks.gateway import fastjson


def test_round_trip_of_a_facemesh_event():
    event = ["facemesh", {"facemesh": [[1.5, 2.25, -0.125]] * 478, "output": ["attention"]}]
    assert fastjson.loads(fastjson.dumps(event, separators=(",", ":"))) == event


def test_what_orjson_refuses_is_still_read():
    # A Python client's NaN must reach the gateway's validation (refused as non_finite, with an
    # error event) rather than vanish as an undecodable packet.
    got = fastjson.loads('{"facemesh": [[NaN, 1, Infinity]], "n": 123456789012345678901234567890}')
    assert math.isnan(got["facemesh"][0][0]) and got["facemesh"][0][2] == math.inf
    assert got["n"] == 123456789012345678901234567890
