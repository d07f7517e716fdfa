"""Error rates per subgroup at one global threshold, as in NIST FRVT demographic reports.

Groups come from a labels CSV (``identity`` or ``path`` column plus any label columns: group,
age band, pose...) or automatically from each pair's face quality. A pair belongs to a group
when both its images do; pairs across two groups are reported apart as ``(mixed)`` and left
out of the max/min ratios. A pair's quality is that of its worse image: the smaller face, the
blurrier chip, the larger head turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DatasetError
from .metrics import MIN_ERRORS
from .protocols import _read_csv, identity_of

MIXED = "(mixed)"
NO_FACE = "(no face)"
#: Sort order of automatic buckets, by the first word of their name.
BUCKET_ORDER = ("low", "mid", "high", "<", "15-30°", ">=")
UNLABELLED = "(unlabelled)"
#: Head-turn buckets in degrees of |yaw|: frontal, turned, near profile.
YAW_EDGES = (15.0, 30.0)


@dataclass(frozen=True)
class Labels:
    """Label columns per identity or per image path, read from a CSV."""

    key: str
    columns: list[str]
    values: dict[str, dict[str, str]]
    source: str

    def of(self, path: Path, column: str) -> str:
        key = identity_of(path) if self.key == "identity" else str(path.resolve())
        return self.values.get(key, {}).get(column, "") or UNLABELLED


def read_labels(file: Path) -> Labels:
    """A labels CSV: an ``identity`` (folder name) or ``path`` (relative to the CSV) column, then label columns."""
    if not file.is_file():
        raise DatasetError(f"{file}: no such labels file")
    rows = _read_csv(file, ())
    key = next((k for k in ("identity", "path") if k in rows[0]), None)
    if key is None:
        raise DatasetError(f"{file}: needs an 'identity' or a 'path' column (has {', '.join(rows[0])})")
    columns = [c for c in rows[0] if c not in ("identity", "path")]
    if not columns:
        raise DatasetError(f"{file}: no label column besides {key!r}")
    values = {_label_key(file, key, row): {c: row[c] for c in columns} for row in rows}
    return Labels(key, columns, values, str(file))


def _label_key(file: Path, key: str, row: dict[str, str]) -> str:
    return row[key] if key == "identity" else str((file.parent / row[key]).resolve())


def pair_groups(labels: Labels, column: str, path_a: Sequence[Path], path_b: Sequence[Path]) -> np.ndarray:
    """The group of each pair for one label column; MIXED when its two images differ."""
    a = [labels.of(p, column) for p in path_a]
    b = [labels.of(p, column) for p in path_b]
    return np.array([x if x == y else MIXED for x, y in zip(a, b)], dtype=object)


def quality_groups(quality_a: np.ndarray, quality_b: np.ndarray) -> dict[str, np.ndarray]:
    """Automatic buckets per pair from (face size, sharpness, yaw) of both images: size and sharpness
    in tertiles of this data set (low/mid/high), head turn in fixed bands of |yaw|."""
    size = np.fmin(quality_a[:, 0], quality_b[:, 0])
    sharpness = np.fmin(quality_a[:, 1], quality_b[:, 1])
    yaw = np.fmax(np.abs(quality_a[:, 2]), np.abs(quality_b[:, 2]))
    return {
        "face size (px, smaller face)": _tertiles(size, "{:.0f}"),
        "sharpness (blurrier face)": _tertiles(sharpness, "{:.0f}"),
        "head turn (|yaw|, more turned face)": _bands(yaw, YAW_EDGES, "°"),
    }


def _tertiles(values: np.ndarray, fmt: str) -> np.ndarray:
    finite = values[np.isfinite(values)]
    if len(finite) < 3:
        return np.full(len(values), NO_FACE, dtype=object)
    low, high = np.percentile(finite, [100 / 3, 200 / 3])
    names = [
        f"low (< {fmt.format(low)})",
        f"mid ({fmt.format(low)}-{fmt.format(high)})",
        f"high (>= {fmt.format(high)})",
    ]
    return _label(values, np.digitize(values, [low, high]), names)


def _bands(values: np.ndarray, edges: tuple[float, float], unit: str) -> np.ndarray:
    names = [f"< {edges[0]:.0f}{unit}", f"{edges[0]:.0f}-{edges[1]:.0f}{unit}", f">= {edges[1]:.0f}{unit}"]
    return _label(values, np.digitize(values, edges), names)


def _label(values: np.ndarray, bucket: np.ndarray, names: list[str]) -> np.ndarray:
    out = np.array([names[min(b, len(names) - 1)] for b in bucket], dtype=object)
    out[~np.isfinite(values)] = NO_FACE
    return out


def group_rates(scores: np.ndarray, same: np.ndarray, groups: np.ndarray, threshold: float) -> dict[str, Any]:
    """FMR and FNMR of each group at ``threshold`` (match when score >= it), with max/min ratios."""
    accepted = scores >= threshold
    rows = []
    # Buckets in their natural order (low, mid, high; first appearance), pseudo-groups last.
    order = {name: i for i, name in enumerate(BUCKET_ORDER)}
    present = set(groups.tolist())
    for group in sorted(present, key=lambda g: (g in (MIXED, UNLABELLED, NO_FACE), order.get(_stem(g), 99), g)):
        member = groups == group
        genuine, impostor = member & same, member & ~same
        rows.append(
            {
                "group": group,
                "genuine_pairs": int(genuine.sum()),
                "impostor_pairs": int(impostor.sum()),
                "false_non_matches": int((genuine & ~accepted).sum()),
                "false_matches": int((impostor & accepted).sum()),
                "fnmr": float(np.mean(~accepted[genuine])) if genuine.any() else None,
                "fmr": float(np.mean(accepted[impostor])) if impostor.any() else None,
            }
        )
    ranked = [r for r in rows if r["group"] not in (MIXED, UNLABELLED, NO_FACE)]
    return {"groups": rows, "fmr_ratio": _ratio(ranked, "fmr"), "fnmr_ratio": _ratio(ranked, "fnmr")}


def _stem(group: str) -> str:
    return group.split(" ")[0]


def _ratio(rows: list[dict[str, Any]], rate: str) -> dict[str, Any]:
    """Max/min of a rate over groups; undefined (None, with the reason) when the smallest rate is 0."""
    values = [(r[rate], r["group"]) for r in rows if r[rate] is not None]
    errors = "false_matches" if rate == "fmr" else "false_non_matches"
    few = [r["group"] for r in rows if r[errors] < MIN_ERRORS]
    if len(values) < 2:
        return {"ratio": None, "note": "fewer than two groups"}
    (low, low_group), (high, high_group) = min(values), max(values)
    note = f"fewer than {MIN_ERRORS} errors, unreliable: {', '.join(few)}" if few else ""
    if low == 0:
        return {
            "ratio": None,
            "max_group": high_group,
            "min_group": low_group,
            "note": f"{low_group} has no errors" + (f"; {note}" if note else ""),
        }
    return {"ratio": high / low, "max_group": high_group, "min_group": low_group, "note": note}
