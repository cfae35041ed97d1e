import numpy as np
import pytest
from scipy.interpolate import splev, splprep

from glg.errors import GlgError
from glg.landmarks import JAW, LEFT_EYE, RIGHT_BROW, RIGHT_EYE
from glg.heatmap import HEATMAP_CURVES, SPLINE_SAMPLES, draw_heatmap, spline_curves
from glg.landmark_transfer import centre_on, style_transfer, transfer_landmarks
from glg.mean_face import MEAN_FACE_3D
from glg.parts import PART_NAMES, PART_POINTS, crop_origin, crop_part, part_boxes

S = 224


def face(scale: float = 1.3, shift=(0.0, 0.0)) -> np.ndarray:
    """(68, 2) frontal landmarks in a 224 frame, ~1.3 px per mean-face unit."""
    return MEAN_FACE_3D[:, :2] * scale + S / 2 + np.asarray(shift)


def ink_near(heatmap: np.ndarray, point: np.ndarray, radius: int = 1) -> float:
    x, y = np.rint(point).astype(int)
    return float(heatmap[y - radius:y + radius + 1, x - radius:x + radius + 1].max())


def test_curves_pass_through_their_landmarks():
    points = face() + np.random.default_rng(0).normal(0, 1.5, (68, 2))
    for curve, (part, closed) in zip(spline_curves(points), HEATMAP_CURVES):
        np.testing.assert_allclose(curve[::SPLINE_SAMPLES][:len(part)], points[part], atol=1e-9)
    heatmap = draw_heatmap(points, S)
    assert heatmap.shape == (S, S) and heatmap.dtype == np.float32
    assert 0.0 <= heatmap.min() and heatmap.max() <= 1.0
    assert all(ink_near(heatmap, p) > 0.3 for p in points)


def test_curves_are_splprep_fits():
    points = face() + np.random.default_rng(1).normal(0, 2.0, (68, 2))
    for curve, (part, closed) in zip(spline_curves(points), HEATMAP_CURVES):
        data = points[list(part) + [part[0]]] if closed else points[part]
        u = np.arange(len(data), dtype=float)
        tck, _ = splprep(data.T, u=u, k=min(3, len(data) - 1), s=0, per=int(closed))
        np.testing.assert_allclose(np.stack(splev(np.linspace(0, u[-1], len(curve)), tck), -1),
                                   curve, atol=1e-9)


def test_eyes_and_lips_close_and_brows_and_jaw_do_not():
    points = face()
    curves = dict(zip((p.start for p, _ in HEATMAP_CURVES), spline_curves(points)))
    for part, closed in HEATMAP_CURVES:
        ends_meet = np.allclose(curves[part.start][0], curves[part.start][-1])
        assert ends_meet == closed, part
    heatmap = draw_heatmap(points, S)
    for eye in (RIGHT_EYE, LEFT_EYE):  # the closing segment, last point back to the first
        assert ink_near(heatmap, (points[eye[-1]] + points[eye[0]]) / 2) > 0.3
    brow_chord = (points[RIGHT_BROW[0]] + points[RIGHT_BROW[-1]]) / 2
    assert ink_near(heatmap, brow_chord) == 0.0
    jaw = spline_curves(points)[0]
    assert np.linalg.norm(jaw[0] - jaw[-1]) == pytest.approx(
        np.linalg.norm(points[JAW[0]] - points[JAW[-1]]))


def test_degenerate_landmarks_draw_without_crashing():
    collapsed = np.full((68, 2), 100.0)  # every part collapsed to one point
    assert draw_heatmap(collapsed, S).max() > 0
    repeated = face()
    repeated[LEFT_EYE] = repeated[LEFT_EYE][0]
    repeated[37] = repeated[36]
    assert np.isfinite(draw_heatmap(repeated, S)).all()
    assert draw_heatmap(face(shift=(5000.0, -9000.0)), S).max() == 0.0  # far off the canvas


def test_non_finite_landmarks_are_a_clear_error():
    points = face()
    points[3, 0] = np.nan
    with pytest.raises(GlgError, match="finite"):
        draw_heatmap(points, S)


def test_part_boxes_centre_on_each_part():
    points = face()
    centres, sizes = part_boxes(points)
    assert centres.shape == sizes.shape == (4, 2)
    for k, name in enumerate(PART_NAMES):
        own = points[PART_POINTS[name]]
        np.testing.assert_allclose(centres[k], (own.min(0) + own.max(0)) / 2)
        np.testing.assert_allclose(sizes[k], own.max(0) - own.min(0))
    assert centres[0, 0] > centres[1, 0]  # left eye (subject's) on the image right


def test_crop_cuts_the_window_around_the_centre():
    image = np.arange(S * S * 3, dtype=np.int64).reshape(S, S, 3)
    crop = crop_part(image, np.array([100.0, 50.0]), 10, 20)
    assert crop.shape == (10, 20, 3)
    x0, y0 = crop_origin((100.0, 50.0), 10, 20)
    assert (x0, y0) == (90, 45)
    np.testing.assert_array_equal(crop, image[45:55, 90:110])


@pytest.mark.parametrize("centre", [(0.0, 0.0), (223.7, 223.9), (-5.0, 100.0), (1e6, -1e6)])
def test_crop_pads_at_borders(centre):
    image = np.full((S, S), 7, np.uint8)
    crop = crop_part(image, np.array(centre), 16, 24)
    assert crop.shape == (16, 24)
    x0, y0 = crop_origin(centre, 16, 24)
    ys, xs = np.mgrid[y0:y0 + 16, x0:x0 + 24]
    inside = (xs >= 0) & (xs < S) & (ys >= 0) & (ys < S)
    assert (crop[inside] == 7).all() and (crop[~inside] == 0).all()


def test_crop_of_a_non_finite_centre_is_a_clear_error():
    with pytest.raises(GlgError, match="part centre"):
        crop_part(np.zeros((S, S)), np.array([np.nan, 3.0]), 8, 8)


def people(n_frames: int = 200):
    """Driving frames with exact per-coordinate statistics, and a source person's statistics."""
    rng = np.random.default_rng(3)
    z = rng.normal(size=(n_frames, 68, 2))
    z = (z - z.mean(0)) / z.std(0)  # exactly mean 0, std 1 per coordinate
    d_mean, d_std = face(), rng.uniform(0.5, 3.0, (68, 2))
    s_mean, s_std = face(1.1, (4.0, -6.0)), rng.uniform(0.5, 3.0, (68, 2))
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
