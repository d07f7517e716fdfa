"""``face_recognition`` 1.4's ``face_detection`` command on faceprint: the same options and output lines.

Prints ``file,top,right,bottom,left`` for each face of ``IMAGE_TO_CHECK`` (a photo or a folder of photos).
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
from typing import Any

import click

from . import api as face_recognition
from ._files import image_files_in_folder


def print_result(filename: str, location: tuple[int, int, int, int]) -> None:
    top, right, bottom, left = location
    print(f"{filename},{top},{right},{bottom},{left}")


def test_image(image_to_check: str, model: str, upsample: int) -> None:
    """Print the faces of one photo."""
    unknown_image = face_recognition.load_image_file(image_to_check)
    locations = face_recognition.face_locations(unknown_image, number_of_times_to_upsample=upsample, model=model)
    for face_location in locations:
        print_result(image_to_check, face_location)


def process_images_in_process_pool(images_to_check: list[str], number_of_cpus: int, model: str, upsample: int) -> None:
    processes = None if number_of_cpus == -1 else number_of_cpus
    # As the original: macOS crashes in libdispatch with 'fork'.
    context: Any = multiprocessing
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
    with context.Pool(processes=processes) as pool:
        pool.starmap(test_image, zip(images_to_check, itertools.repeat(model), itertools.repeat(upsample)))
        # Workers that exit (rather than being terminated) flush what they printed into a pipe.
        pool.close()
        pool.join()


@click.command()
@click.argument("image_to_check")
@click.option("--cpus", default=1, help='Number of CPU cores to use in parallel. -1 means "use all in system".')
@click.option(
    "--model",
    default="hog",
    help='Face detection model: "hog" (default, CPU-friendly) or "cnn" (more accurate, GPU-accelerated).',
)
@click.option(
    "--upsample",
    default=0,
    help="How many times to upsample the image looking for faces. Higher numbers find smaller faces.",
)
def main(image_to_check: str, cpus: int, model: str, upsample: int) -> None:
    if not os.path.isdir(image_to_check):
        test_image(image_to_check, model, upsample)
    elif cpus == 1:
        for image_file in image_files_in_folder(image_to_check):
            test_image(image_file, model, upsample)
    else:
        process_images_in_process_pool(image_files_in_folder(image_to_check), cpus, model, upsample)


if __name__ == "__main__":
    main()
