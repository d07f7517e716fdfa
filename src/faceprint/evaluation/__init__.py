"""Measuring faceprint on your own data: verification, identification, calibration and subgroup error rates.

``faceprint eval`` and ``faceprint calibrate`` are the command-line front ends; the pieces are
usable on their own: ``metrics`` (numpy arrays in, numbers out), ``protocols`` (pairs files,
splits), ``cache`` (embeddings on disk), ``fairness``, ``calibration`` and ``report``.
"""

from .evaluate import (
    EvaluationSettings,
    IdentificationRun,
    VerificationRun,
    evaluate,
    identify_split,
    read_protocol,
    verify_pairs,
)
from .fairness import read_labels
from .protocols import Pairs, Split, read_pairs, split_folder, split_from_csv
from .report import write_report

__all__ = [
    "EvaluationSettings",
    "IdentificationRun",
    "Pairs",
    "Split",
    "VerificationRun",
    "evaluate",
    "identify_split",
    "read_labels",
    "read_pairs",
    "read_protocol",
    "split_folder",
    "split_from_csv",
    "verify_pairs",
    "write_report",
]
