import numpy as np
import pytest

from glg.face.landmarks import (LEFT_EYE, NOSE_BRIDGE, RIGHT_EYE, interocular, pose_from_rotation,
                                rotation_matrix)
from glg.face.mean_face import MEAN_FACE_3D

NOSE_TIP = NOSE_BRIDGE[-1]


def test_mean_face_is_frontal_and_symmetric():
    right, left = MEAN_FACE_3D[RIGHT_EYE].mean(0), MEAN_FACE_3D[LEFT_EYE].mean(0)
    assert right[0] < 0 < left[0]  # the subject's right eye appears on the image left
    assert MEAN_FACE_3D[NOSE_TIP, 2] > MEAN_FACE_3D[:, 2].mean()  # the nose points at the camera
    assert interocular(MEAN_FACE_3D[:, :2]) == pytest.approx(65.7, abs=0.1)


@pytest.mark.parametrize("pose", [(0, 0, 0), (10, -20, 5), (-14, 24, -13), (3, 0, 0)])
def test_pose_round_trips(pose):
    assert pose_from_rotation(rotation_matrix(*pose)) == pytest.approx(pose, abs=1e-9)


def test_sign_conventions():
    nose = np.array([0.0, 0.0, 1.0])
    assert (rotation_matrix(0, 20, 0) @ nose)[0] > 0  # yaw > 0: nose to the image right
    assert (rotation_matrix(20, 0, 0) @ nose)[1] < 0  # pitch > 0: nose up (y points down)
    eye_line = rotation_matrix(0, 0, 20) @ np.array([1.0, 0.0, 0.0])
    assert eye_line[1] > 0  # roll > 0: eye line turns clockwise in a y-down image
