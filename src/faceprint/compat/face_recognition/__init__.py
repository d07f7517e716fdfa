"""``face_recognition`` 1.4's API on faceprint: change one import line and keep the rest of the code.

    import faceprint.compat.face_recognition as face_recognition

The same functions, arguments, defaults and results as ``face_recognition`` (ageitgey, MIT),
with the same modules (``api``, ``face_recognition_cli``, ``face_detection_cli``): dlib's HOG
and CNN detectors and shape predictors as it uses them, and dlib's raw 128-d descriptors, computed
by faceprint's ONNX port of dlib's ResNet (batched over an image's faces, many times faster).
face_recognition's copyright and licence notice: ``faceprint/data/LICENSE-face_recognition.txt``.
"""

from .api import (
    batch_face_locations,
    compare_faces,
    face_distance,
    face_encodings,
    face_landmarks,
    face_locations,
    load_image_file,
)

__all__ = [
    "batch_face_locations",
    "compare_faces",
    "face_distance",
    "face_encodings",
    "face_landmarks",
    "face_locations",
    "load_image_file",
]
