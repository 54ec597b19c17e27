"""Property-based tests (hypothesis): decoders, feature maths and the image API on generated input
never fail in any way other than their typed, documented errors."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from processors.cues import frame_evidence
from schemas import FaceResult, LandmarkFrame, PayloadError
from schemas.codec import HEADER, MAGIC
from sinks.gateway import mojo
from sinks.gateway.faces import ImageError, decode
from vision.features.expression import aligned_shape, rules_baseline
from vision.features.eyes import eye_openness, gaze
from vision.features.pose import head_pose

fast = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@fast
@given(st.binary(max_size=8000))
def test_any_bytes_decode_or_raise_a_payload_error(data):
    for cls in (LandmarkFrame, FaceResult):
        try:
            cls.decode(data)
        except PayloadError as exc:
            assert exc.reason and str(exc)


@fast
@given(st.sampled_from([1, 2, 3]), st.integers(0, 3), st.binary(max_size=7000))
def test_a_valid_header_with_any_body_decodes_or_raises_a_payload_error(kind, version, body):
    try:
        LandmarkFrame.decode(HEADER.pack(MAGIC, kind, version) + body)
    except PayloadError:
        pass


faces = arrays(np.float64, (2, 478, 3), elements=st.floats(-2000, 2000, allow_nan=False, width=32))


@fast
@given(faces)
def test_feature_maths_stay_finite_and_in_range(px):
    # Any finite point cloud, including degenerate ones (all points equal, collinear, huge).
    pose = head_pose(px)
    assert pose.shape == (2, 3) and np.isfinite(pose).all() and (np.abs(pose) <= 180.001).all()
    g = gaze(px)
    assert g.shape == (2, 2) and np.isfinite(g).all()
    shape = aligned_shape(px)
    assert shape.shape == (2, 120) and np.isfinite(shape).all()
    bs = np.clip(np.nan_to_num(np.abs(px[:, :52, 0]) / 2000.0), 0, 1).astype(np.float32)
    ev = frame_evidence(bs, np.nan_to_num(pose), np.nan_to_num(g))
    assert ev.shape == (2, 4) and (ev >= 0).all() and (ev <= 1).all()
    p = rules_baseline(bs)
    assert np.allclose(p.sum(1), 1, atol=1e-5) and (p > 0).all()
    assert np.isfinite(eye_openness(px)).all()


json_values = st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner,
                                                                                        max_size=5),
                           max_leaves=30)


@fast
@given(json_values, json_values, json_values)
def test_any_socketio_payload_is_used_or_refused_with_an_event_error(mesh, ts, output):
    try:
        mojo.facemesh_points(mesh)
    except mojo.EventError:
        pass
    try:
        mojo.parse_timestamp(ts)
    except mojo.EventError:
        pass
    try:
        mojo.parse_outputs(output)
    except mojo.EventError:
        pass


@fast
@given(st.binary(max_size=4000) | st.binary(max_size=2000).map(lambda b: b"\x89PNG\r\n\x1a\n" + b)
       | st.binary(max_size=2000).map(lambda b: b"\xff\xd8\xff" + b))
def test_any_upload_decodes_or_is_refused_with_an_http_error(data):
    try:
        rgb = decode(data)
        assert rgb.ndim == 3 and rgb.shape[2] == 3
    except ImageError as exc:
        assert exc.status_code in (400, 413, 415, 422) and exc.detail
