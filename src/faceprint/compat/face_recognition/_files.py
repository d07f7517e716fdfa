"""What both command lines share with the original's: which files of a folder are images."""

from __future__ import annotations

import os
import re


def image_files_in_folder(folder: str) -> list[str]:
    """The folder's .jpg, .jpeg and .png files (any case), in directory order, as the original lists them."""
    return [os.path.join(folder, f) for f in os.listdir(folder) if re.match(r".*\.(jpg|jpeg|png)", f, flags=re.I)]
