"""Evaluation inputs: verification pairs (CSV or LFW ``pairs.txt``) and identification splits.

Paths inside a pairs or split file are relative to that file's folder unless an images
root is given. The identity of an image, where a protocol needs one, is its folder's name
(the folder-per-person layout of LFW and of ``faceprint enroll --from-dir``).
"""

from __future__ import annotations

import csv
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DatasetError
from ..image import IMAGE_SUFFIXES, iter_image_files

#: Non-mated probes kept per withheld identity, and mated probes per enrolled one, so that a
#: few people with hundreds of photos do not dominate the figures.
MAX_PROBES_PER_IDENTITY = 10


@dataclass(frozen=True)
class Pairs:
    """Verification pairs in file order, with the cross-validation fold of each."""

    path_a: list[Path]
    path_b: list[Path]
    same: np.ndarray
    folds: np.ndarray
    source: str

    def __len__(self) -> int:
        return len(self.same)

    def images(self) -> list[Path]:
        """Every image the pairs use, once, in order of first use."""
        return list(dict.fromkeys([*self.path_a, *self.path_b]))


def read_pairs(file: Path, images_root: Path | None = None) -> Pairs:
    """A pairs file: CSV ``path_a,path_b,same[,fold]`` (``.csv``) or LFW's ``pairs.txt`` (any other suffix)."""
    if not file.is_file():
        raise DatasetError(f"{file}: no such pairs file")
    root = images_root or file.parent
    pairs = _read_pairs_csv(file, root) if file.suffix.lower() == ".csv" else _read_lfw_pairs(file, root)
    if not pairs.same.any() or pairs.same.all():
        raise DatasetError(f"{file}: needs both same-person and different-person pairs")
    return pairs


def _read_pairs_csv(file: Path, root: Path) -> Pairs:
    rows = _read_csv(file, ("path_a", "path_b", "same"))
    try:
        same = np.array([_flag(r["same"]) for r in rows], dtype=bool)
        folds = np.array([int(r["fold"]) for r in rows]) if "fold" in rows[0] else np.arange(len(rows)) % 10
    except ValueError as exc:
        raise DatasetError(f"{file}: {exc}") from None
    return Pairs([root / r["path_a"] for r in rows], [root / r["path_b"] for r in rows], same, folds, str(file))


def _flag(value: str) -> bool:
    text = value.strip().lower()
    if text in ("1", "true", "yes", "same"):
        return True
    if text in ("0", "false", "no", "different"):
        return False
    raise ValueError(f"'same' must be 1 or 0, not {value!r}")


def _read_lfw_pairs(file: Path, root: Path) -> Pairs:
    """LFW ``pairs.txt``: a header ``sets n`` (or ``n``), then per set n same lines ``name i j`` and n
    different lines ``name1 i name2 j``; each set is a fold."""
    lines = [line.split() for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not lines or not all(token.isdigit() for token in lines[0]):
        raise DatasetError(f"{file}: not an LFW pairs.txt (first line must be 'sets pairs_per_set')")
    per_set = int(lines[0][-1])
    path_a, path_b, same = [], [], []
    for number, fields in enumerate(lines[1:], start=2):
        if len(fields) == 3:
            path_a.append(_lfw_image(root, fields[0], fields[1]))
            path_b.append(_lfw_image(root, fields[0], fields[2]))
            same.append(True)
        elif len(fields) == 4:
            path_a.append(_lfw_image(root, fields[0], fields[1]))
            path_b.append(_lfw_image(root, fields[2], fields[3]))
            same.append(False)
        else:
            raise DatasetError(f"{file}, line {number}: expected 'name i j' or 'name1 i name2 j'")
    sets = int(lines[0][0]) if len(lines[0]) == 2 else 1
    # One set has nothing to cross-validate against: then folds interleave, as for a CSV.
    folds = np.arange(len(same)) // (2 * per_set) if sets > 1 and per_set else np.arange(len(same)) % 10
    return Pairs(path_a, path_b, np.array(same), folds, str(file))


def _lfw_image(root: Path, name: str, number: str) -> Path:
    """``root/name/name_000n.jpg``; another image suffix is accepted when no .jpg exists."""
    stem = root / name / f"{name}_{int(number):04d}"
    jpg = stem.with_suffix(".jpg")
    if jpg.exists():
        return jpg
    others = [stem.with_suffix(s) for s in sorted(IMAGE_SUFFIXES) if stem.with_suffix(s).exists()]
    return others[0] if others else jpg


def _read_csv(file: Path, columns: Sequence[str]) -> list[dict[str, str]]:
    try:
        with open(file, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{file}: cannot read CSV ({exc})") from None
    if not rows:
        raise DatasetError(f"{file}: no rows")
    missing = [c for c in columns if c not in rows[0]]
    if missing:
        raise DatasetError(f"{file}: missing column(s) {', '.join(missing)} (has {', '.join(rows[0])})")
    return rows


def identity_of(path: Path) -> str:
    """The identity of an image in a folder-per-person layout: its folder's name."""
    return path.parent.name


@dataclass(frozen=True)
class Split:
    """A 1:N protocol: gallery images, mated probes (identity enrolled) and non-mated probes (withheld)."""

    gallery: list[tuple[Path, str]]
    probes: list[tuple[Path, str]]
    withheld: frozenset[str]
    description: str

    def images(self) -> list[Path]:
        return list(dict.fromkeys(path for path, _ in [*self.gallery, *self.probes]))


def split_folder(root: Path, *, withhold: float, seed: int) -> Split:
    """Split a folder-per-person dataset: a seeded share ``withhold`` of identities is kept out of the
    gallery (their photos become non-mated probes); every other identity enrolls one photo, the
    rest of its photos are mated probes (at most MAX_PROBES_PER_IDENTITY of each)."""
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    by_identity = {d.name: iter_image_files(d) for d in sorted(root.iterdir()) if d.is_dir()}
    by_identity = {name: files for name, files in by_identity.items() if files}
    if len(by_identity) < 2:
        raise DatasetError(f"{root}: needs at least 2 sub-folders of photos (one folder per person)")
    rng = random.Random(seed)
    withheld = frozenset(rng.sample(sorted(by_identity), round(withhold * len(by_identity))))
    gallery, probes = [], []
    for name, files in by_identity.items():
        shuffled = rng.sample(files, len(files))
        if name in withheld:
            probes += [(f, name) for f in shuffled[:MAX_PROBES_PER_IDENTITY]]
        else:
            gallery.append((shuffled[0], name))
            probes += [(f, name) for f in shuffled[1 : 1 + MAX_PROBES_PER_IDENTITY]]
    description = (
        f"{root}: one photo enrolled per identity, {len(withheld)} of {len(by_identity)} identities withheld "
        f"(seed {seed})"
    )
    return Split(gallery, probes, withheld, description)


def split_from_csv(gallery_csv: Path, probes_csv: Path, *, withhold: float, seed: int) -> Split:
    """A given gallery/probe split (CSVs ``path,identity``); a seeded share ``withhold`` of the gallery's
    identities is taken out of it, their gallery photos joining the probes as non-mated searches."""
    gallery = [(gallery_csv.parent / r["path"], r["identity"]) for r in _read_csv(gallery_csv, ("path", "identity"))]
    probes = [(probes_csv.parent / r["path"], r["identity"]) for r in _read_csv(probes_csv, ("path", "identity"))]
    identities = sorted({name for _, name in gallery})
    withheld = frozenset(random.Random(seed).sample(identities, round(withhold * len(identities))))
    per_identity: dict[str, int] = defaultdict(int)
    non_mated = []
    for path, name in [*probes, *gallery]:
        if name in withheld and per_identity[name] < MAX_PROBES_PER_IDENTITY:
            per_identity[name] += 1
            non_mated.append((path, name))
    kept_probes = [(p, n) for p, n in probes if n not in withheld]
    description = (
        f"{gallery_csv.name} / {probes_csv.name}: {len(withheld)} of {len(identities)} gallery identities withheld "
        f"(seed {seed})"
    )
    return Split([(p, n) for p, n in gallery if n not in withheld], kept_probes + non_mated, withheld, description)
