"""Head pose (yaw, pitch, roll) from landmarks: one function for the quality report and attributes.

With dlib's 68 points, the pose is solved with ``cv2.solvePnP`` against a generic 3D face
(six points: nose tip, chin, outer eye corners, mouth corners; millimetres, the widely used
model of Mallick's "Head Pose Estimation using OpenCV and Dlib"), the camera centred on the
face with a focal length equal to the image's larger side. With only the 5 points, yaw comes
from how far the base of the nose sits from the midpoint of the eyes: about 0.19 inter-eye
distances per unit of tan(yaw), a ratio fitted against solvePnP yaws of faces-dev photos
(r = 0.83; against this module's solver, r = 0.86 and slope 0.94 on 235 faces-dev faces and their
mirror images); pitch cannot be told from 5 points and is ``None``.

Signs, in image terms: positive yaw, the face turns towards the image's right; positive pitch,
the face tilts up; positive roll, the face rotates clockwise on the image (its right-hand side
in the image lower).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .types import HeadPose

#: Generic 3D face, x right / y up / z towards the camera, for 68-point indices _MODEL_POINTS.
_MODEL_3D = np.array(
    [
        (0.0, 0.0, 0.0),  # nose tip
        (0.0, -330.0, -65.0),  # chin
        (-225.0, 170.0, -135.0),  # outer corner of the eye on the image's left
        (225.0, 170.0, -135.0),  # outer corner of the eye on the image's right
        (-150.0, -150.0, -125.0),  # mouth corner, image left
        (150.0, -150.0, -125.0),  # mouth corner, image right
    ]
)
_MODEL_POINTS = [30, 8, 36, 45, 48, 54]
#: Model frame -> camera frame (x right, y down, z away from the camera) for a frontal face.
_FRONTAL = np.diag([1.0, -1.0, -1.0])
#: Nose-base offset (in inter-eye distances) per unit of tan(yaw), for 5-point landmarks.
_NOSE_DEPTH_RATIO = 0.19


def head_pose(landmarks: np.ndarray, image_size: tuple[int, int] | None = None) -> HeadPose:
    """Pose from dlib's 68 points (solvePnP; ``image_size`` = (width, height)) or 5 points."""
    if len(landmarks) == 68:
        return _solve_68(np.asarray(landmarks, dtype=np.float64), image_size)
    if len(landmarks) == 5:
        return _estimate_5(np.asarray(landmarks, dtype=np.float64))
    raise ValueError(f"head pose needs 5 or 68 landmarks, not {len(landmarks)}")


def _solve_68(landmarks: np.ndarray, image_size: tuple[int, int] | None) -> HeadPose:
    image_points = landmarks[_MODEL_POINTS]
    centre = landmarks.mean(axis=0)
    focal = float(max(image_size)) if image_size else 4.0 * float(np.ptp(landmarks[:, 0]))
    camera = np.array([[focal, 0.0, centre[0]], [0.0, focal, centre[1]], [0.0, 0.0, 1.0]])
    ok, rotation_vector, _ = cv2.solvePnP(_MODEL_3D, image_points, camera, None, flags=cv2.SOLVEPNP_ITERATIVE)
    if not ok:
        return _estimate_5(_five_from_68(landmarks))
    # The head's own rotation in camera axes: identity for a face looking straight at the camera.
    head = cv2.Rodrigues(rotation_vector)[0] @ _FRONTAL
    forward = head @ np.array([0.0, 0.0, -1.0])  # where the nose points (towards the camera when frontal)
    across = head @ np.array([1.0, 0.0, 0.0])  # from the image-left eye to the image-right eye
    yaw = math.degrees(math.atan2(forward[0], -forward[2]))
    pitch = math.degrees(math.atan2(-forward[1], math.hypot(forward[0], forward[2])))
    roll = math.degrees(math.atan2(across[1], across[0]))
    return HeadPose(yaw, pitch, roll)


def _five_from_68(landmarks: np.ndarray) -> np.ndarray:
    """dlib's 5-point layout (eye corners, nose base) taken from the 68 points."""
    return landmarks[[45, 42, 36, 39, 33]]


def _estimate_5(landmarks: np.ndarray) -> HeadPose:
    eye_a = landmarks[0:2].mean(axis=0)
    eye_b = landmarks[2:4].mean(axis=0)
    left, right = (eye_a, eye_b) if eye_a[0] <= eye_b[0] else (eye_b, eye_a)
    dx, dy = right - left
    eye_distance = math.hypot(dx, dy)
    if eye_distance < 1e-6:
        return HeadPose(0.0, None, 0.0)
    roll = math.degrees(math.atan2(dy, dx))
    # Nose offset along the eye line, in inter-eye distances.
    nose = landmarks[4] - (left + right) / 2.0
    offset = (nose[0] * dx + nose[1] * dy) / eye_distance**2
    return HeadPose(math.degrees(math.atan(offset / _NOSE_DEPTH_RATIO)), None, roll)
