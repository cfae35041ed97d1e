"""glg.face.landmark_transfer: paper Eq. 3 gives the source's statistics and keeps the driving's
centre."""

import numpy as np

from glg.face.landmark_transfer import (centre_on, place_generated, style_transfer,
                                        transfer_landmarks)
from glg.face.mean_face import MEAN_FACE_3D


def people(n_frames: int = 200):
    """Driving frames with exact per-coordinate statistics, and a source person's statistics."""
    rng = np.random.default_rng(3)
    z = rng.normal(size=(n_frames, 68, 2))
    z = (z - z.mean(0)) / z.std(0)  # exactly mean 0, std 1 per coordinate
    d_mean, d_std = MEAN_FACE_3D[:, :2] * 1.3 + 112, rng.uniform(0.5, 3.0, (68, 2))
    s_mean, s_std = MEAN_FACE_3D[:, :2] * 1.1 + (116, 106), rng.uniform(0.5, 3.0, (68, 2))
    return d_mean + d_std * z, (d_mean, d_std, s_mean, s_std)


def test_eq3_gives_the_source_statistics():
    driving, stats = people()
    reenact = style_transfer(driving, *stats)
    np.testing.assert_allclose(reenact.mean(0), stats[2], atol=1e-9)
    np.testing.assert_allclose(reenact.std(0), stats[3], atol=1e-9)


def test_transfer_keeps_the_driving_centre_and_the_eq3_shape():
    driving, stats = people()
    moved = transfer_landmarks(driving, *stats)
    np.testing.assert_allclose(moved.mean(-2), driving.mean(-2), atol=1e-9)
    reenact = style_transfer(driving, *stats)
    np.testing.assert_allclose(moved - moved.mean(-2, keepdims=True),
                               reenact - reenact.mean(-2, keepdims=True), atol=1e-9)
    np.testing.assert_allclose(centre_on(reenact, driving), moved)


def test_transfer_to_oneself_is_the_identity():
    driving, (d_mean, d_std, _, _) = people(20)
    np.testing.assert_allclose(transfer_landmarks(driving, d_mean, d_std, d_mean, d_std), driving,
                               atol=1e-9)


def test_a_constant_coordinate_does_not_divide_by_zero():
    driving, (d_mean, d_std, s_mean, s_std) = people(5)
    d_std = d_std.copy()
    d_std[0] = 0.0
    driving[:, 0] = d_mean[0]
    assert np.isfinite(style_transfer(driving, d_mean, d_std, s_mean, s_std)).all()


def test_generated_landmarks_are_centred_on_the_driving_keeping_their_shape():
    driving, stats = people(4)
    generated = (style_transfer(driving, *stats) + 9.0).astype(np.float32)  # elsewhere
    placed = place_generated(generated, driving)
    assert placed.dtype == np.float32
    np.testing.assert_allclose(placed.mean(-2), driving.mean(-2), atol=1e-4)
    np.testing.assert_allclose(placed - placed.mean(-2, keepdims=True),
                               generated - generated.mean(-2, keepdims=True), atol=1e-4)
