"""Run face_recognition's own test suite against faceprint.compat.face_recognition.

face_recognition's source distribution holds its tests (tests/test_face_recognition.py) and
their photos; face-recognition-ng 1.4.2 ships the same test file without the photos, so take
the original's (MIT; its photos are not committed here):

    pip download --no-binary :all: --no-deps face_recognition==1.3.0 -d /tmp/frsdist
    python tools/face_recognition_suite.py /tmp/frsdist/face_recognition-1.3.0.tar.gz

The tests and photos are extracted to a temporary folder, their ``from face_recognition import``
lines pointed at ``faceprint.compat.face_recognition``, and run with unittest; the exit status
is unittest's.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

TEST_FILE = "tests/test_face_recognition.py"
ORIGINAL_IMPORT = re.compile(r"^from face_recognition import ", flags=re.M)
COMPAT_IMPORT = "from faceprint.compat.face_recognition import "


def extract_tests(sdist: Path, folder: Path) -> Path:
    """The sdist's tests folder (test file and photos) under ``folder``, with the imports rewritten."""
    with tarfile.open(sdist) as archive:
        members = [m for m in archive.getmembers() if "/tests/" in m.name and m.isfile()]
        if not any(m.name.endswith(TEST_FILE) for m in members):
            raise SystemExit(f"{sdist} holds no {TEST_FILE}")
        archive.extractall(folder, members=members, filter="data")
    test_file = next(folder.glob(f"*/{TEST_FILE}"))
    source, count = ORIGINAL_IMPORT.subn(COMPAT_IMPORT, test_file.read_text())
    if count == 0 or "import face_recognition\n" in source:
        raise SystemExit(f"unexpected imports in {test_file}")
    test_file.write_text(source)
    if not (test_file.parent / "test_images").is_dir():
        raise SystemExit(f"{sdist} holds no tests/test_images: take face_recognition's sdist")
    return test_file


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sdist", type=Path, help="face_recognition's .tar.gz source distribution")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        test_file = extract_tests(args.sdist, Path(folder))
        command = [sys.executable, "-m", "unittest", "-v", f"tests.{test_file.stem}"]
        return subprocess.run(command, cwd=test_file.parent.parent, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
