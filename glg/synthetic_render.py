"""Rendering of the demo frames: a piecewise-affine warp over a triangle mesh, and paint.

The mesh's last vertices are `border_points(size)`, fixed anchors just outside the frame, so
its triangles cover every pixel. Images are RGB uint8 `(H, W, 3)`; points `(N, 2)` px with pixel
centres at integer coordinates (OpenCV's remap, dlib).
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from glg.landmarks import INNER_LIPS, LEFT_EYE, RIGHT_EYE

BORDER_STEPS = 4  # fixed anchors per frame side; the background outside the head stays put
CAVITY_RGB = np.array([48.0, 16.0, 18.0])  # the inside of an open mouth
TEETH_RGB = np.array([214.0, 206.0, 190.0])
LASH_RGB = np.array([40.0, 28.0, 26.0])  # the lash line of a closed eye


def border_points(size: int) -> np.ndarray:
    """`(4 * BORDER_STEPS, 2)` fixed anchors just outside the frame, clockwise from top-left."""
    lo, hi = -2.0, size + 1.0
    steps = np.linspace(lo, hi, BORDER_STEPS + 1)
    top = [(x, lo) for x in steps[:-1]]
    right = [(hi, y) for y in steps[:-1]]
    bottom = [(x, hi) for x in steps[:0:-1]]
    left = [(lo, y) for y in steps[:0:-1]]
    return np.array(top + right + bottom + left)


def backward_map(src: np.ndarray, dst: np.ndarray, depth: np.ndarray, mesh: np.ndarray,
                 size: int) -> tuple[np.ndarray, np.ndarray]:
    """Piecewise-affine map of each frame pixel to portrait px: `(size, size)` x and y, float32.
    Triangles are drawn far to near, so a fold shows the nearer surface."""
    tri_dst, tri_src = dst[mesh], src[mesh]  # (K, 3, 2)
    corners = np.concatenate([tri_dst, np.ones((len(mesh), 3, 1))], axis=-1)  # (K, 3, 3)
    area = np.linalg.det(corners) / 2
    usable = np.abs(area) > 1e-3
    affine = np.zeros((len(mesh) + 1, 3, 2))  # (K + 1, 3, 2): [x y 1] @ affine = source px
    affine[:-1][usable] = np.linalg.solve(corners[usable], tri_src[usable])
    # Pixels no triangle covers (none, as the border anchors lie outside) take the crop map.
    border = slice(len(src) - len(border_points(size)), None)
    homogeneous = np.concatenate([dst[border], np.ones((len(border_points(size)), 1))], axis=-1)
    affine[-1] = np.linalg.lstsq(homogeneous, src[border], rcond=None)[0]
    label = np.full((size, size), len(mesh), dtype=np.int32)
    order = np.argsort(depth[mesh].mean(axis=1), kind="stable")
    for k in order[usable[order]]:
        cv2.fillConvexPoly(label, np.round(tri_dst[k] * 16).astype(np.int32), int(k), cv2.LINE_8, 4)
    coefficients = affine.reshape(-1, 6).astype(np.float32)  # (K + 1, 6): ax, bx, ay, by, cx, cy
    chosen = np.take(coefficients, label, axis=0)  # (H, W, 6)
    xs, ys = _pixel_grid(size)
    map_x = xs * chosen[..., 0] + ys * chosen[..., 2] + chosen[..., 4]
    map_y = xs * chosen[..., 1] + ys * chosen[..., 3] + chosen[..., 5]
    return map_x, map_y


@functools.cache
def _pixel_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    return xs, ys


def _paint(image: np.ndarray, shapes: list[np.ndarray], closed: bool, colour: np.ndarray,
           opacity: float = 1.0, within: np.ndarray | None = None) -> np.ndarray:
    """Blend `colour` into `image` (uint8, in place) over filled polygons or 1 px polylines drawn
    anti-aliased at 1/16 px, only inside `within`'s coverage if given; the coverage, 0..1."""
    size = image.shape[0]
    points = np.concatenate(shapes)
    x0, y0 = np.clip(np.floor(points.min(axis=0)).astype(int) - 2, 0, size)
    x1, y1 = np.clip(np.ceil(points.max(axis=0)).astype(int) + 3, 0, size)
    mask = np.zeros((size, size), dtype=np.uint8)
    if x1 <= x0 or y1 <= y0:
        return mask.astype(np.float32)
    fixed = [np.round(p * 16).astype(np.int32) for p in shapes]
    if closed:
        cv2.fillPoly(mask, fixed, 255, cv2.LINE_AA, 4)
    else:
        cv2.polylines(mask, fixed, False, 255, 1, cv2.LINE_AA, 4)
    cover = mask.astype(np.float32) / 255.0
    if within is not None:
        cover = np.minimum(cover, within)
    alpha = cover[y0:y1, x0:x1, None] * opacity
    region = image[y0:y1, x0:x1].astype(np.float32)
    blended = region * (1 - alpha) + colour * alpha + 0.5
    image[y0:y1, x0:x1] = np.clip(blended, 0, 255).astype(np.uint8)
    return cover


def paint_mouth_and_lids(image: np.ndarray, landmarks: np.ndarray, closure: float) -> np.ndarray:
    """Paint the dark mouth cavity (with the upper teeth) inside the inner lips and the lash line
    of closing eyes, so that the frame shows what its landmarks say; uint8 `(H, W, 3)` in place."""
    inner = landmarks[list(INNER_LIPS)]  # 60..67: corner, upper edge, corner, lower edge
    x, y = inner[:, 0], inner[:, 1]
    area = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    if area > 0.5:
        cavity = _paint(image, [inner], True, CAVITY_RGB)
        gap = np.linalg.norm(landmarks[66] - landmarks[62])
        upper = landmarks[[60, 61, 62, 63, 64]]
        drop = np.array([0.0, 1.0, 1.0, 1.0, 0.0])[:, None] * np.array([0.0, 0.3 * gap])
        teeth = np.concatenate([upper, (upper + drop)[::-1]])
        _paint(image, [teeth], True, TEETH_RGB, within=cavity)
    if closure > 0.5:
        lids = [landmarks[[eye[0], eye[1], eye[2], eye[3]]] for eye in (RIGHT_EYE, LEFT_EYE)]
        _paint(image, lids, False, LASH_RGB, opacity=(closure - 0.5) * 1.4)
    return image
