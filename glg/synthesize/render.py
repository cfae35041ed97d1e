"""Rendering of the demo frames: a piecewise-affine warp of the portrait over a triangle mesh,
paint for the mouth and the lids, and the MP4 writer.

Every frame turns the identity's AU-moved 3D face by the frame's pose, projects it with a
weak-perspective camera and warps the portrait so that its own landmarks land on the projected
ones: the projected landmarks are the ground truth, exact by construction. The mesh's last
vertices are `border_points(size)`, fixed anchors just outside the frame, so its triangles cover
every pixel. Images are RGB uint8 `(H, W, 3)` (glg/store/video.py); points `(N, 2)` px under
glg/face/landmarks.py's pixel convention (OpenCV's remap and dlib share it).
"""

from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np
from scipy.spatial import Delaunay

from glg.errors import GlgError
from glg.face.landmarks import AU_IDS, INNER_LIPS, LEFT_EYE, RIGHT_EYE, rotation_matrix
from glg.face.mean_face import MEAN_FACE_3D
from glg.synthesize.faces import Identity, identity_image, move_by_aus, project
from glg.synthesize.plans import ClipPlan

FOURCC = "mp4v"  # MPEG-4 Part 2 through OpenCV's FFmpeg: deterministic, readable everywhere
FACE_WIDTH = 0.46  # jaw-to-jaw width of a frontal face, as a fraction of the frame side
FACE_CENTRE_Y = 0.50  # height of MEAN_FACE_3D's origin (about the nose tip), fraction of side
BORDER_STEPS = 4  # fixed anchors per frame side; the background outside the head stays put
CAVITY_RGB = np.array([48.0, 16.0, 18.0])  # the inside of an open mouth
TEETH_RGB = np.array([214.0, 206.0, 190.0])
LASH_RGB = np.array([40.0, 28.0, 26.0])  # the lash line of a closed eye

# Points that move with the head but are not landmarks: forehead, crown, the sides of the head
# and the neck, in MEAN_FACE_3D's frame (mm). They keep the hair and the forehead turning with
# the face instead of stretching between the brows and the frame border.
HEAD_ANCHORS = np.array(
    [[x, -88.0, 8.0 - 0.01 * x * x] for x in (-60.0, -30.0, 0.0, 30.0, 60.0)]  # forehead
    + [[x, -135.0, -30.0 - 0.004 * x * x] for x in (-70.0, 0.0, 70.0)]  # crown
    + [[sx * 92.0, y, -75.0] for sx in (-1.0, 1.0) for y in (-70.0, -20.0, 30.0)]  # head sides
    + [[sx * 60.0, 85.0, -70.0] for sx in (-1.0, 1.0)],  # behind the jaw angles
)
NECK_ANCHORS = np.array([[-45.0, 125.0, -60.0], [0.0, 130.0, -40.0], [45.0, 125.0, -60.0]])


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


def frame_camera(size: int) -> tuple[float, np.ndarray]:
    """px per mm and the px position of the 3D origin for a centred frontal face."""
    face_width = MEAN_FACE_3D[16, 0] - MEAN_FACE_3D[0, 0]
    return FACE_WIDTH * size / face_width, np.array([size / 2, FACE_CENTRE_Y * size])


@functools.cache
def triangles(size: int) -> np.ndarray:
    """`(K, 3)` vertex indices of the warp mesh: a Delaunay triangulation of the mean face's
    landmarks (inner lips open, so the mouth has its own triangles), head, neck and border
    anchors, in a frontal frame of side `size`."""
    scale, offset = frame_camera(size)
    face, _ = project(np.concatenate([MEAN_FACE_3D, HEAD_ANCHORS, NECK_ANCHORS]), np.eye(3),
                      scale, offset)
    return Delaunay(np.concatenate([face, border_points(size)])).simplices.astype(np.int64)


def warp_points(identity: Identity, pose: np.ndarray, intensities: np.ndarray, shift: np.ndarray,
                zoom: float, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mesh vertices in the portrait `(N, 2)`, in the frame `(N, 2)` and their depth `(N,)`;
    the first 68 frame vertices are the frame's landmarks."""
    rotation = rotation_matrix(*pose)
    base_scale, base_offset = frame_camera(size)
    scale, offset = base_scale * zoom, base_offset + shift * size
    src_face = identity.portrait.landmarks
    src_head, _ = project(HEAD_ANCHORS, identity.source_pose, identity.source_scale,
                          identity.source_offset)
    src_neck, _ = project(NECK_ANCHORS, identity.source_pose, identity.source_scale,
                          identity.source_offset)
    dst_face, z_face = project(move_by_aus(identity.shape, intensities), rotation, scale, offset)
    dst_head, z_head = project(HEAD_ANCHORS, rotation, scale, offset)
    # The neck follows the head's translation halfway and does not turn with it.
    dst_neck, z_neck = project(NECK_ANCHORS, np.eye(3), base_scale, base_offset + shift * size / 2)
    # The background is a fixed crop of the portrait: frame px -> portrait px.
    dst_border = border_points(size)
    ratio = identity.source_scale / base_scale
    src_border = identity.source_offset + (dst_border - base_offset) * ratio
    src = np.concatenate([src_face, src_head, src_neck, src_border])
    dst = np.concatenate([dst_face, dst_head, dst_neck, dst_border])
    depth = np.concatenate([z_face, z_head, z_neck, np.full(len(dst_border), -1e4)])
    return src, dst, depth


def render_frame(identity: Identity, image: np.ndarray, pose: np.ndarray, intensities: np.ndarray,
                 shift: np.ndarray, zoom: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One frame, RGB uint8 `(size, size, 3)`, and its ground-truth landmarks `(68, 2)`.

    `image` is `identity_image(identity)`, passed in so a clip colours its portrait once.
    """
    src, dst, depth = warp_points(identity, pose, intensities, shift, zoom, size)
    map_x, map_y = backward_map(src, dst, depth, triangles(size), size)
    frame = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    landmarks = dst[:68]
    closure = float(intensities[AU_IDS.index(45)])
    return paint_mouth_and_lids(frame, landmarks, closure), landmarks


def render_clip(identity: Identity, plan: ClipPlan, path: Path, size: int,
                fps: int) -> np.ndarray:
    """Render and encode one clip to `path`; its ground-truth landmarks `(T, 68, 2)`."""
    cv2.setNumThreads(1)  # one clip per process; also keeps the output independent of threads
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*FOURCC), fps, (size, size))
    if not writer.isOpened():
        raise GlgError(f"{path}: OpenCV cannot open an {FOURCC} video writer")
    image = identity_image(identity)
    landmarks = np.zeros((len(plan.poses), 68, 2))
    try:
        for t in range(len(plan.poses)):
            frame, landmarks[t] = render_frame(identity, image, plan.poses[t], plan.aus[t],
                                               plan.shifts[t], plan.zooms[t], size)
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return landmarks

