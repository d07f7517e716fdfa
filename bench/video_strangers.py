"""Strangers in a video stay unknown: the Hamilton clip against a gallery of every faces-dev person plus
the faces-hires people, decided at the default FPIR.

    python bench/video_strangers.py [--fpir 0.01] [--every 5]

The gallery holds the faces-dev templates (bench/distractors.py, one person per identity, every photo)
and the 5 faces-hires people (enrolled from their photos). Only Lin-Manuel Miranda, Alex Lacamoire and
Barack Obama appear in the clip. Printed: every label shown on some frame with its frame count, the share
of frames ~100-215 (Miranda's frontal segment) on which a track over his face is labelled with his name,
and the revision events.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np

import common
import distractors
from faceprint import Gallery, Template
from faceprint.pipeline import DEFAULT_OPTIONS
from faceprint.video import IdentityOptions, VideoOptions, VideoProcessor, open_source

ROOT = Path(__file__).resolve().parents[1]
HIRES = ROOT / "tests" / "data" / "faces-hires"
IN_CLIP = {"Lin-Manuel Miranda", "Alex Lacamoire", "Barack Obama"}
FRONTAL = range(100, 216)


def build(path: Path) -> None:
    real = distractors.real_templates()
    names = [p.split("/")[-2] for p in real.paths]
    with Gallery(path, index="exact") as gallery:
        for name in sorted(set(names)):
            rows = [i for i, n in enumerate(names) if n == name]
            gallery.add_templates(name, [Template(v, DEFAULT_OPTIONS.model.model_id) for v in real.vectors[rows]])
        people = {d.name.replace("_", " "): sorted(d.glob("*.*")) for d in HIRES.iterdir() if d.is_dir()}
        gallery.enroll_people({name: photos for name, photos in people.items() if name != "multi"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fpir", type=float, default=None)
    parser.add_argument("--every", type=int, default=5)
    parser.add_argument("--detector", choices=("hog", "yunet"), default=VideoOptions.detector)
    args = parser.parse_args()
    path = common.CACHE_DIR / "video-strangers.db"
    if not path.exists():
        build(path)
    shown: Counter[str] = Counter()
    miranda = []
    clip = common.shared_data() / "video" / "short_hamilton_clip.mp4"
    with Gallery(path) as gallery, open_source(clip) as source:
        options = VideoOptions(
            detect_every=args.every, detector=args.detector, identity=IdentityOptions(fpir=args.fpir)
        )
        processor = VideoProcessor(gallery, options, fps=source.fps)
        for result in processor.run(source):
            labels = [f.label for f in result.faces if not f.coasting]
            shown.update(set(labels))
            if result.frame.index in FRONTAL:
                miranda.append("Lin-Manuel Miranda" in labels)
        events = processor.finish()
        point = gallery.identification_point(args.fpir, refresh=False)
    anonymous = ("unknown", "uncertain", "?")
    strangers = {label: n for label, n in shown.items() if label not in IN_CLIP and not label.startswith(anonymous)}
    report = {
        "gallery_templates": point.templates,
        "fpir": point.fpir,
        "threshold": point.threshold,
        "basis": point.basis,
        "labels_frames": dict(shown.most_common()),
        "wrong_names": strangers,
        "miranda_frontal_share": float(np.mean(miranda)) if miranda else None,
        "revisions": [e.to_dict() for e in events if e.event == "revision"],
    }
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
