"""OpenFace's mean 3D face of the 68 landmarks: the rigid model behind head pose (the paper read
poses with OpenFace, Sec IV-C; which of its models is not said).

`head_pose` fits it to 2D landmarks (PnP): annotate's pose, and the landmark GAN's trainer and
evaluate reading the pose of generated landmarks; the synthesizer shapes identities from it.
Points are in `glg.face.landmarks`' order, in mm-like units: x to the image right, y down, z
toward the camera.
"""

from __future__ import annotations

import cv2
import numpy as np

from glg.face.landmarks import pose_from_rotation

# OpenFace's "wild" point distribution model (our choice of OpenFace's models: the paper does
# not name one).
MEAN_FACE_3D = np.array(
    [
        [ -73.393523,  -29.801432,  -47.667532],  # 0
        [ -72.775014,  -10.949766,  -45.909403],  # 1
        [ -70.533638,    7.929818,  -44.842580],  # 2
        [ -66.850058,   26.074280,  -43.141114],  # 3
        [ -59.790187,   42.564390,  -38.635298],  # 4
        [ -48.368973,   56.481080,  -30.750622],  # 5
        [ -34.121101,   67.246992,  -18.456453],  # 6
        [ -17.875411,   75.056892,   -3.609035],  # 7
        [   0.098749,   77.061286,    0.881698],  # 8
        [  17.477031,   74.758448,   -5.181201],  # 9
        [  32.648966,   66.929021,  -19.176563],  # 10
        [  46.372358,   56.311389,  -30.770570],  # 11
        [  57.343480,   42.419126,  -37.628629],  # 12
        [  64.388482,   25.455880,  -40.886309],  # 13
        [  68.212038,    6.990805,  -42.281449],  # 14
        [  70.486405,  -11.666193,  -44.142567],  # 15
        [  71.375822,  -30.365191,  -47.140426],  # 16
        [ -61.119406,  -49.361602,  -14.254422],  # 17
        [ -51.287588,  -58.769795,   -7.268147],  # 18
        [ -37.804800,  -61.996155,   -0.442051],  # 19
        [ -24.022754,  -61.033399,    6.606501],  # 20
        [ -11.635713,  -56.686759,   11.967398],  # 21
        [  12.056636,  -57.391033,   12.051204],  # 22
        [  25.106256,  -61.902186,    7.315098],  # 23
        [  38.338588,  -62.777713,    1.022953],  # 24
        [  51.191007,  -59.302347,   -5.349435],  # 25
        [  60.053851,  -50.190255,  -11.615746],  # 26
        [   0.653940,  -42.193790,   13.380835],  # 27
        [   0.804809,  -30.993721,   21.150853],  # 28
        [   0.992204,  -19.944596,   29.284036],  # 29
        [   1.226783,   -8.414541,   36.948060],  # 30
        [ -14.772472,    2.598255,   20.132003],  # 31
        [  -7.180239,    4.751589,   23.536684],  # 32
        [   0.555920,    6.562900,   25.944448],  # 33
        [   8.272499,    4.661005,   23.695741],  # 34
        [  15.214351,    2.643046,   20.858157],  # 35
        [ -46.047290,  -37.471411,   -7.037989],  # 36
        [ -37.674688,  -42.730510,   -3.021217],  # 37
        [ -27.883856,  -42.711517,   -1.353629],  # 38
        [ -19.648268,  -36.754742,    0.111088],  # 39
        [ -28.272965,  -35.134493,    0.147273],  # 40
        [ -38.082418,  -34.919043,   -1.476612],  # 41
        [  19.265868,  -37.032306,    0.665746],  # 42
        [  27.894191,  -43.342445,   -0.247660],  # 43
        [  37.437529,  -43.110822,   -1.696435],  # 44
        [  45.170805,  -38.086515,   -4.894163],  # 45
        [  38.196454,  -35.532024,   -0.282961],  # 46
        [  28.764989,  -35.484289,    1.172675],  # 47
        [ -28.916267,   28.612716,    2.240310],  # 48
        [ -17.533194,   22.172187,   15.934335],  # 49
        [  -6.684590,   19.029051,   22.611355],  # 50
        [   0.381001,   20.721118,   23.748437],  # 51
        [   8.375443,   19.035460,   22.721995],  # 52
        [  18.876618,   22.394109,   15.610679],  # 53
        [  28.794412,   28.079924,    3.217393],  # 54
        [  19.057574,   36.298248,   14.987997],  # 55
        [   8.956375,   39.634575,   22.554245],  # 56
        [   0.381549,   40.395647,   23.591626],  # 57
        [  -7.428895,   39.836405,   22.406106],  # 58
        [ -18.160634,   36.677899,   15.121907],  # 59
        [ -24.377490,   28.677771,    4.785684],  # 60
        [  -6.897633,   25.475976,   20.893742],  # 61
        [   0.340663,   26.014269,   22.220479],  # 62
        [   8.444722,   25.326198,   21.025520],  # 63
        [  24.474473,   28.323008,    5.712776],  # 64
        [   8.449166,   30.596216,   20.671489],  # 65
        [   0.205322,   31.408738,   21.903670],  # 66
        [  -7.198266,   30.844876,   20.328022],  # 67
    ],
    dtype=np.float64,
)

# Focal length of the PnP camera in units of the frame width: a ~60 deg field of view camera
# frame cropped to 1.8x the face box (extract.crop_scale) gives about 3 crop widths. The
# crop's true camera is unknown; a longer focal length means a weaker perspective.
FOCAL = 3.0
# OpenCV's camera has z pointing away from the camera; MEAN_FACE_3D's z points toward it.
_FLIP_Z = np.diag([1.0, 1.0, -1.0])
# Pose is fitted to the points expressions barely move: nose, eye corners and the upper jaw
# line (no chin, lips, lids or brows: an open mouth would otherwise read as a pitch change).
RIGID_POINTS = (*range(27, 36), 36, 39, 42, 45, 0, 1, 2, 14, 15, 16)
_OBJECT_POINTS = np.ascontiguousarray(MEAN_FACE_3D[list(RIGID_POINTS)] @ _FLIP_Z)  # (K, 3)


def head_pose(landmarks: np.ndarray, width: int, height: int) -> tuple[float, float, float]:
    """(pitch, yaw, roll) degrees of (68, 2) landmarks, signs as `landmarks.rotation_matrix`.

    PnP of `RIGID_POINTS` against MEAN_FACE_3D, pinhole camera of focal length `FOCAL` widths.
    """
    focal = FOCAL * width
    camera = np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]], np.float64)
    image_points = np.ascontiguousarray(landmarks[list(RIGID_POINTS)], dtype=np.float64)
    ok, rvec, tvec = cv2.solvePnP(_OBJECT_POINTS, image_points, camera, None,
                                  flags=cv2.SOLVEPNP_EPNP)
    if ok:
        ok, rvec, tvec = cv2.solvePnP(_OBJECT_POINTS, image_points, camera, None, rvec, tvec,
                                      useExtrinsicGuess=True, flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok or tvec[2, 0] <= 0:
        return (np.nan, np.nan, np.nan)
    rotation_cv, _ = cv2.Rodrigues(rvec)
    # p_cv = R_cv F X  =>  in MEAN_FACE_3D's frame p = F R_cv F X.
    return pose_from_rotation(_FLIP_Z @ rotation_cv @ _FLIP_Z)
