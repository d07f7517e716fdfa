"""``face_recognition`` 1.4's ``face_recognition`` command on faceprint: the same options and output lines.

``KNOWN_PEOPLE_FOLDER`` holds one photo per person, named after them; each face of
``IMAGE_TO_CHECK`` (a photo or a folder of photos) prints ``file,name`` for every known person
within ``--tolerance`` (``file,name,distance`` with ``--show-distance true``), else
``file,unknown_person``; a photo without a face prints ``file,no_persons_found``.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
from typing import Any

import click
import numpy as np
import PIL.Image

from . import api as face_recognition
from ._files import image_files_in_folder

#: Photos whose longest side is larger are shrunk to it first (as the original does, for speed).
MAX_SIDE = 1600


def scan_known_people(known_people_folder: str) -> tuple[list[str], list[np.ndarray]]:
    """The names (file names without extension) and first-face encodings of the known people's photos."""
    known_names = []
    known_face_encodings = []
    for file in image_files_in_folder(known_people_folder):
        basename = os.path.splitext(os.path.basename(file))[0]
        encodings = face_recognition.face_encodings(face_recognition.load_image_file(file))
        if len(encodings) > 1:
            click.echo(f"WARNING: More than one face found in {file}. Only considering the first face.")
        if len(encodings) == 0:
            click.echo(f"WARNING: No faces found in {file}. Ignoring file.")
        else:
            known_names.append(basename)
            known_face_encodings.append(encodings[0])
    return known_names, known_face_encodings


def print_result(filename: str, name: str, distance: float | None, show_distance: bool = False) -> None:
    if show_distance:
        print(f"{filename},{name},{distance}")
    else:
        print(f"{filename},{name}")


def test_image(
    image_to_check: str,
    known_names: list[str],
    known_face_encodings: list[np.ndarray],
    tolerance: float = 0.6,
    show_distance: bool = False,
) -> None:
    """Print the result lines of one photo."""
    unknown_image = face_recognition.load_image_file(image_to_check)
    if max(unknown_image.shape) > MAX_SIDE:
        pil_img = PIL.Image.fromarray(unknown_image)
        pil_img.thumbnail((MAX_SIDE, MAX_SIDE), PIL.Image.Resampling.LANCZOS)
        unknown_image = np.array(pil_img)
    unknown_encodings = face_recognition.face_encodings(unknown_image)
    for unknown_encoding in unknown_encodings:
        distances = face_recognition.face_distance(known_face_encodings, unknown_encoding)
        result = list(distances <= tolerance)
        if True in result:
            for is_match, name, distance in zip(result, known_names, distances):
                if is_match:
                    print_result(image_to_check, name, distance, show_distance)
        else:
            print_result(image_to_check, "unknown_person", None, show_distance)
    if not unknown_encodings:
        print_result(image_to_check, "no_persons_found", None, show_distance)


def process_images_in_process_pool(
    images_to_check: list[str],
    known_names: list[str],
    known_face_encodings: list[np.ndarray],
    number_of_cpus: int,
    tolerance: float,
    show_distance: bool,
) -> None:
    processes = None if number_of_cpus == -1 else number_of_cpus
    # As the original: macOS crashes in libdispatch with 'fork'.
    context: Any = multiprocessing
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
    with context.Pool(processes=processes) as pool:
        parameters = zip(
            images_to_check,
            itertools.repeat(known_names),
            itertools.repeat(known_face_encodings),
            itertools.repeat(tolerance),
            itertools.repeat(show_distance),
        )
        pool.starmap(test_image, parameters)
        # Workers that exit (rather than being terminated) flush what they printed into a pipe.
        pool.close()
        pool.join()


@click.command()
@click.argument("known_people_folder")
@click.argument("image_to_check")
@click.option("--cpus", default=1, help='Number of CPU cores to use in parallel. -1 means "use all in system".')
@click.option(
    "--tolerance",
    default=0.6,
    help="Tolerance for face comparisons. Default is 0.6. Lower this if you get multiple matches for the same person.",
)
@click.option(
    "--show-distance", default=False, type=bool, help="Output face distance. Useful for tweaking tolerance setting."
)
def main(known_people_folder: str, image_to_check: str, cpus: int, tolerance: float, show_distance: bool) -> None:
    known_names, known_face_encodings = scan_known_people(known_people_folder)
    if not os.path.isdir(image_to_check):
        test_image(image_to_check, known_names, known_face_encodings, tolerance, show_distance)
    elif cpus == 1:
        for image_file in image_files_in_folder(image_to_check):
            test_image(image_file, known_names, known_face_encodings, tolerance, show_distance)
    else:
        images = image_files_in_folder(image_to_check)
        process_images_in_process_pool(images, known_names, known_face_encodings, cpus, tolerance, show_distance)


if __name__ == "__main__":
    main()
