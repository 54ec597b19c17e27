import numpy as np

from vision.features.eyes import LEFT_IRIS, RIGHT_EYE, RIGHT_IRIS, eye_openness, gaze
from vision.features.pose import to_pixel_space


def test_closed_eyes_are_less_open_than_open_eyes(real_faces):
    f = real_faces
    px = to_pixel_space(f.landmarks, f.width, f.height)
    ear = eye_openness(px)
    assert ear.shape == (len(px), 2)
    blink = f.blendshapes[:, 9:11]  # MediaPipe's own eyeBlinkLeft, eyeBlinkRight
    closed = ear[blink > 0.5]
    opened = ear[blink < 0.2]
    assert len(closed) > 5 and len(opened) > 20
    assert closed.mean() < 0.5 * opened.mean()
    assert np.median(closed) < np.percentile(opened, 10)


def test_gaze_is_finite_and_bounded(real_faces):
    f = real_faces
    g = gaze(to_pixel_space(f.landmarks, f.width, f.height))
    assert g.shape == (len(f.landmarks), 2)
    assert np.isfinite(g).all() and np.abs(g).max() < 1.5


def test_gaze_follows_the_iris():
    """Move both irises within the eyes: gaze moves the same way."""
    pts = np.zeros((1, 478, 3), np.float32)
    pts[0, 33], pts[0, 133] = (100, 100, 0), (140, 100, 0)
    pts[0, 263], pts[0, 362] = (220, 100, 0), (180, 100, 0)
    pts[0, RIGHT_IRIS], pts[0, LEFT_IRIS] = (120, 100, 0), (200, 100, 0)
    assert np.allclose(gaze(pts), 0, atol=1e-6)
    pts[0, [RIGHT_IRIS, LEFT_IRIS], 0] += 10  # both irises to the image's right
    pts[0, [RIGHT_IRIS, LEFT_IRIS], 1] -= 4  # and up (image y points down)
    gx, gy = gaze(pts)[0]
    assert abs(gx - 0.5) < 1e-5 and abs(gy - 0.2) < 1e-5
    assert RIGHT_EYE[0] == 33
