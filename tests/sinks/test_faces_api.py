"""The image API on real photos, over real HTTP (uvicorn on 127.0.0.1), and every error case."""

from __future__ import annotations

import io
import socket
import struct
import threading
import time
import zlib

import cv2
import httpx
import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI
from PIL import Image  # only to write a CMYK JPEG, which OpenCV cannot

from infra import assets
from infra.settings import Settings
from sinks.gateway.app import install_error_handlers
from sinks.gateway.faces import FaceAnalyzer, make_router

LIMIT = 2 * 1024 * 1024


@pytest.fixture(scope="module")
def api() -> str:
    app = FastAPI()
    install_error_handlers(app)
    # The image handling alone: no keys, limits out of the way (both are tested through a real
    # gateway at the end of this file).
    app.include_router(make_router(Settings(max_image_bytes=LIMIT, image_rate_per_key=1000, image_max_concurrent=16),
                                   FaceAnalyzer()))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def _post(url: str, data: bytes, *, multipart: bool = True, **params) -> httpx.Response:
    if multipart:
        return httpx.post(f"{url}/v1/faces", files={"image": ("x.jpg", data, "image/jpeg")}, params=params, timeout=60)
    return httpx.post(f"{url}/v1/faces", content=data, headers={"Content-Type": "image/jpeg"}, params=params,
                      timeout=60)


def _bytes(name: str) -> bytes:
    return assets.media(name).read_bytes()


def _error(r: httpx.Response, code: int) -> str:
    assert r.status_code == code, r.text
    body = r.json()
    assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"]
    return body["error"]["message"]


def test_one_face_has_every_field_of_both_services(api):
    r = _post(api, _bytes("single_face.jpg"))
    assert r.status_code == 200, r.text
    (face,) = r.json()["faces"]
    h, w = cv2.imread(str(assets.media("single_face.jpg"))).shape[:2]
    assert 0.5 <= face["faceConfidence"] == face["probability"] <= 1.0
    b, rect = face["boundingBox"], face["rectangle"]
    assert 0 <= b["x"] and 0 <= b["y"] and b["x"] + b["w"] <= w and b["y"] + b["h"] <= h and b["w"] > 50
    assert rect["left"] == pytest.approx(b["x"], abs=1) and rect["right"] == pytest.approx(b["x"] + b["w"], abs=1)
    s = face["emotion"]["sentiments"]
    assert set(s) == {"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"} == set(face["emotions"])
    assert sum(s.values()) == pytest.approx(1, abs=1e-4)
    assert face["emotion"]["value"] == max(s, key=s.get) and face["emotion"]["probability"] == s[face["emotion"]["value"]]
    assert 1 <= face["age"] <= 100 and face["gender"]["value"] in ("Male", "Female")
    assert 50 <= face["gender"]["confidence"] <= 100
    lm = {p["type"]: p for p in face["landmarks"]}
    assert list(lm) == ["eyeLeft", "eyeRight", "nose", "lipLeft", "lipRight"]
    for p in lm.values():
        assert b["x"] <= p["x"] <= b["x"] + b["w"] and b["y"] <= p["y"] <= b["y"] + b["h"]
    assert lm["eyeLeft"]["x"] < lm["eyeRight"]["x"] and lm["lipLeft"]["x"] < lm["lipRight"]["x"]
    assert lm["eyeLeft"]["y"] < lm["nose"]["y"] < lm["lipLeft"]["y"]
    assert "mesh" not in face


def test_several_faces_left_to_right_and_expressions(api):
    body = _post(api, _bytes("multi_face.jpg")).json()
    faces = body["faces"]
    assert len(faces) == 5 and "unreadFaces" not in body  # every face, 95-131 px tall
    xs = [f["boundingBox"]["x"] for f in faces]
    assert xs == sorted(xs)
    assert all(95 * 0.6 <= f["boundingBox"]["h"] <= 131 * 1.2 for f in faces)
    assert _post(api, _bytes("0-f15-hao-ph.jpg")).json()["faces"][0]["emotion"]["value"] == "happy"
    assert _post(api, _bytes("0-f1-su-ph.jpg")).json()["faces"][0]["emotion"]["value"] == "surprise"


def test_a_group_photo_at_the_size_limit(api):
    """face-api.js's five-person demo photo, scaled to fit 1920x1080."""
    bgr = cv2.imread(str(assets.npm_file(assets.FACE_API, "demo/sample5.jpg")))
    scale = 1080 / bgr.shape[0]
    small = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    faces = _post(api, cv2.imencode(".jpg", small)[1].tobytes()).json()["faces"]
    assert len(faces) == 5
    assert all(set(f["emotions"]) == {"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"} for f in faces)


@pytest.mark.parametrize("name", ["single_face.jpg", "0-f1-su-ph.jpg", "0-f15-hao-ph.jpg", "15-f13-anc-ph.jpg",
                                  "45-m7-di-ph.jpg"])
def test_single_faces_read_as_with_the_whole_image_landmarker(api, name):
    """Landmarks from a crop around the detected face give the emotions the landmarker gave on
    the whole image (the path before the full-range detector) within 0.05."""
    from vision.features.expression import aligned_mesh, student_features
    from vision.features.pose import to_pixel_space
    from vision.landmarker import Landmarker
    from vision.teacher import Teacher, face_crop

    rgb = cv2.cvtColor(cv2.imread(str(assets.media(name))), cv2.COLOR_BGR2RGB)
    with Landmarker(video=False, max_faces=1) as lmk:
        (face,) = lmk.detect(rgb)
    px = to_pixel_space(face.landmarks[None], float(rgb.shape[1]), float(rgb.shape[0]))
    whole = Teacher(human_head=True).judged_expressions(face_crop(rgb, face.landmarks)[None],
                                                        student_features(aligned_mesh(px), face.blendshapes[None]))[0]
    (got,) = _post(api, _bytes(name)).json()["faces"]
    from schemas.vocabulary import EMOTIONS

    assert max(abs(got["emotions"][e] - float(whole[i])) for i, e in enumerate(EMOTIONS)) < 0.05


def test_raw_body_png_and_full_mesh(api):
    data = _bytes("single_face.jpg")
    multipart = _post(api, data).json()
    assert _post(api, data, multipart=False).json() == multipart
    png = cv2.imencode(".png", cv2.imread(str(assets.media("single_face.jpg"))))[1].tobytes()
    (face,) = _post(api, png, multipart=False).json()["faces"]
    assert face["emotion"]["value"] == multipart["faces"][0]["emotion"]["value"]
    (face,) = _post(api, data, landmarks="all").json()["faces"]
    assert len(face["mesh"]) == 478 and all(len(p) == 2 for p in face["mesh"])


def test_no_face_is_an_empty_list(api):
    cap = cv2.VideoCapture(str(assets.media("no_face.mp4")))
    ok, frame = cap.read()
    assert ok
    r = _post(api, cv2.imencode(".jpg", frame)[1].tobytes())
    assert r.status_code == 200 and r.json() == {"faces": []}


def _png_header(w: int, h: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))


def test_every_error_is_json_with_the_right_status(api):
    jpg = _bytes("single_face.jpg")
    assert "empty" in _error(_post(api, b"", multipart=False), 400)
    r = httpx.post(f"{api}/v1/faces", files={"other": ("x.jpg", jpg, "image/jpeg")})
    assert "'image'" in _error(r, 400)
    assert "bytes" in _error(_post(api, b"\xff\xd8\xff" + b"\x00" * (LIMIT + 10), multipart=False), 413)
    assert "JPG" in _error(_post(api, b"GIF89a" + b"\x00" * 100), 415)
    assert "JPG" in _error(_post(api, b"just some text"), 415)
    big = cv2.imencode(".jpg", np.zeros((1200, 2000, 3), np.uint8))[1].tobytes()
    assert "1920x1080" in _error(_post(api, big), 422)
    assert "truncated" in _error(_post(api, jpg[: len(jpg) // 2]), 422)
    t = time.monotonic()
    bomb = _png_header(100_000, 100_000) + b"\x00" * 100
    assert "100000x100000" in _error(_post(api, bomb), 422)
    assert time.monotonic() - t < 2, "refused from the header, not by decoding"
    assert "400" not in _error(_post(api, _png_header(0, 10)), 422)
    r = httpx.post(f"{api}/v1/faces", content=jpg, params={"landmarks": "some"})
    _error(r, 400)
    zero = cv2.imencode(".png", np.zeros((1, 1, 3), np.uint8))[1].tobytes()
    assert _post(api, zero).status_code == 200  # a 1x1 image is valid, just faceless
    from tests.faults import report

    for case, code in (("empty body", 400), ("too many bytes", 413), ("GIF / text", 415), ("2000x1200", 422),
                       ("truncated JPEG", 422), ("PNG decompression bomb (100000x100000 header)", 422),
                       ("zero-sized PNG header", 422), ("random bytes", 415)):
        report.record("bad input", f"image: {case}", 1, f"HTTP {code} JSON error + dead-letter counter", 0, 0)


def test_unusual_but_valid_images_do_not_crash(api):
    bgr = cv2.imread(str(assets.media("single_face.jpg")))
    sixteen = cv2.imencode(".png", bgr.astype(np.uint16) * 257)[1].tobytes()
    grey = cv2.imencode(".png", cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))[1].tobytes()
    alpha = cv2.imencode(".png", cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA))[1].tobytes()
    cmyk = io.BytesIO()
    Image.open(assets.media("single_face.jpg")).convert("CMYK").save(cmyk, "JPEG")
    # A portrait phone photo: pixels stored sideways with EXIF orientation 6 (OpenCV rotates it).
    rotated = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.open(assets.media("single_face.jpg")).rotate(90, expand=True).save(rotated, "JPEG", exif=exif)
    # A motion photo: a JPEG with more data after its end-of-image marker.
    trailing = _bytes("single_face.jpg") + b"ftypmp42" + b"\x00" * 500
    for data in (sixteen, grey, alpha, cmyk.getvalue(), rotated.getvalue(), trailing):
        r = _post(api, data, multipart=False)
        assert r.status_code == 200 and len(r.json()["faces"]) == 1
    from tests.faults import report

    for case in ("16-bit PNG", "greyscale PNG", "PNG with alpha", "CMYK JPEG", "EXIF-rotated JPEG",
                 "JPEG with trailing data"):
        report.record("bad input", f"image: {case}", 1, "HTTP 200, the face found", 0, 0)


def test_openapi_documents_the_route(api):
    doc = httpx.get(f"{api}/openapi.json").json()
    op = doc["paths"]["/v1/faces"]["post"]
    assert {"200", "400", "413", "415", "422"} <= set(op["responses"])


def test_the_gateway_wants_a_read_key_and_holds_each_key_to_its_rate(make_settings, database_url, start_gateway):
    from concurrent.futures import ThreadPoolExecutor

    from sinks.gateway import auth
    from sinks.store.db import connect, migrate

    with connect(database_url) as conn:
        migrate(conn)
        reader, _ = auth.create_key(conn, "dash", ("read",))
        other, _ = auth.create_key(conn, "other", ("read",))
        ingest, _ = auth.create_key(conn, "kiosk")
    gw = start_gateway(make_settings(image_rate_per_key=1, image_max_concurrent=1), database_url)
    jpg = _bytes("single_face.jpg")

    def post(key: str | None, data: bytes = jpg) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.post(f"{gw.url}/v1/faces", files={"image": ("x.jpg", data, "image/jpeg")}, headers=headers,
                          timeout=120)

    assert "no API key" in _error(post(None), 401)
    assert "lacks the 'read' scope" in _error(post(ingest), 403)
    first = post(reader)
    assert first.status_code == 200 and len(first.json()["faces"]) == 1
    # A second upload within a second: this key's rate is 1 per second. The first of the pair is
    # refused at once (not an image) so the second comes milliseconds later whatever the load.
    time.sleep(1.1)
    assert post(reader, b"not an image").status_code == 415  # refused uploads count too
    again = post(reader)
    assert "per second with this key" in _error(again, 429) and int(again.headers["Retry-After"]) >= 1
    assert post(other).status_code == 200  # another key has its own rate
    time.sleep(1.1)
    # One image at a time: of several at once from different keys, the ones that find the
    # gateway busy get 429 (never an error, never a queue without bound).
    keys = []
    with connect(database_url) as conn:
        keys = [auth.create_key(conn, f"k{i}", ("read",))[0] for i in range(4)]
    big = _bytes("multi_face.jpg")
    with ThreadPoolExecutor(4) as pool:
        codes = sorted(r.status_code for r in pool.map(lambda k: post(k, big), keys))
    assert 200 in codes and 429 in codes and set(codes) <= {200, 429}, codes
    assert "facestream_images_throttled_total" in httpx.get(f"{gw.url}/metrics").text
