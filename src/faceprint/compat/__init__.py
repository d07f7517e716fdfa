"""Drop-in APIs of other face libraries, as thin adapters over faceprint's models and runtimes.

``faceprint.compat.face_recognition``: the API and command lines of ``face_recognition`` 1.4.
"""
