"""glg.face.heatmap: the B-spline curves and the drawn heatmap (Sec III-B)."""

import numpy as np
import pytest
from scipy.interpolate import splev, splprep

from glg.errors import GlgError
from glg.face.heatmap import HEATMAP_CURVES, SPLINE_SAMPLES, draw_heatmap, spline_curves
from glg.face.landmarks import JAW, LEFT_EYE, RIGHT_BROW, RIGHT_EYE
from glg.face.mean_face import MEAN_FACE_3D

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
