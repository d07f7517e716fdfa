"""Identification in the encrypted domain (issue 17): hit rate on faces-dev, speed and sizes at 1k-100k rows.

Hit rate: the faces-dev identification split (identify_gallery.csv people as rows, each their centroid;
identify_probes.csv as probes, strangers included), every probe searched encrypted in both modes. The encrypted top-1
must be the plaintext top-1, or score within 1e-4 of it (a tie).

Speed, per probe (the median of ``--probes``), with keys and gallery prepared beforehand, one process: the server's
scoring plus the client's decryption and ranking; the probe's encryption is reported apart. Rows are random unit
vectors of the model's dimension. Wall and CPU seconds are both given: the machine is shared.

    python bench/private.py --sizes 1000 10000 100000
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import common
import distractors
from faceprint.encrypted import (
    PARAMETERS,
    ClientKey,
    EncryptedRows,
    Layout,
    PlainRows,
    Scorer,
    ciphertexts_to_bytes,
)
from faceprint.models import EMBEDDING_MODELS
from faceprint.pipeline import DEFAULT_OPTIONS

TIE = 1e-4


def timed(run: Callable[[], Any]) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = run()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def encrypted_rows(key: ClientKey, scorer: Scorer, vectors: np.ndarray) -> EncryptedRows:
    """Rows under the client's key, as ``faceprint private enroll`` builds them (a block at a time)."""
    rows = EncryptedRows.empty(
        "bench", vectors.shape[1], rows_per_block=Layout.for_rows(len(vectors), vectors.shape[1]).segment_length
    )
    added = 0
    while added < len(vectors):
        chunk = vectors[added : added + rows.room]
        rows.add(
            scorer, [str(added + i) for i in range(len(chunk))], key.encrypt_rows(chunk, rows.layout, rows.next_slot)
        )
        added += len(chunk)
    return rows


def search(key: ClientKey, scorer: Scorer, probe: np.ndarray, layout: Layout, blocks: list, encrypted: bool) -> dict:
    ciphertexts, encrypt_wall, encrypt_cpu = timed(lambda: key.encrypt_probe(probe, layout))

    def serve_and_decrypt() -> np.ndarray:
        scores = key.decrypt_scores(scorer.score(ciphertexts, blocks, encrypted), layout)
        np.argsort(-scores)[:5]
        return scores

    scores, wall, cpu = timed(serve_and_decrypt)
    return {
        "scores": scores,
        "wall": wall,
        "cpu": cpu,
        "encrypt_wall": encrypt_wall,
        "encrypt_cpu": encrypt_cpu,
        "probe": ciphertexts,
    }


def hit_rate(key: ClientKey, scorer: Scorer, model_id: str) -> dict:
    model = EMBEDDING_MODELS[model_id]
    real = distractors.real_templates(model)
    row_of = {p: i for i, p in enumerate(real.paths)}
    split = {}
    for name in ("gallery", "probes"):
        with open(common.faces_dev() / f"identify_{name}.csv", newline="", encoding="utf-8") as f:
            split[name] = [(r["path"], r["identity"]) for r in csv.DictReader(f) if r["path"] in row_of]
    people = sorted({identity for _, identity in split["gallery"]})
    sums = np.zeros((len(people), model.dimension))
    index = {p: i for i, p in enumerate(people)}
    for path, identity in split["gallery"]:
        sums[index[identity]] += real.vectors[row_of[path]]
    centroids = sums / np.linalg.norm(sums, axis=1, keepdims=True)
    probes = np.stack([real.vectors[row_of[path]] for path, _ in split["probes"]]).astype(np.float64)
    plain_rows = PlainRows(scorer, [(i, p) for i, p in enumerate(people)], centroids, model_id)
    sealed = encrypted_rows(key, scorer, centroids)
    truth = probes @ centroids.T
    report = {"probes": len(probes), "rows": len(people), "model": model_id}
    for mode, layout, blocks, encrypted in (
        ("plain", plain_rows.layout, plain_rows.blocks, False),
        ("encrypted", sealed.layout, sealed.blocks, True),
    ):
        same, worst = 0, 0.0
        for probe, exact in zip(probes, truth):
            scores = search(key, scorer, probe, layout, blocks, encrypted)["scores"]
            chosen = int(np.argmax(scores))
            same += bool(exact[chosen] >= exact.max() - TIE)
            worst = max(worst, float(np.abs(scores - exact).max()))
        report[f"{mode}_top1_equal"] = f"{same}/{len(probes)}"
        report[f"{mode}_max_score_error"] = worst
    return report


def speed(key: ClientKey, scorer: Scorer, size: int, dimension: int, probes: int, modes: list[str]) -> dict:
    rng = np.random.default_rng(size)
    vectors = rng.normal(size=(size, dimension))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    report: dict[str, Any] = {"rows": size, "dimension": dimension}
    for mode in modes:
        if mode == "plain":
            built, prep, _ = timed(lambda: PlainRows(scorer, [(i, str(i)) for i in range(size)], vectors, "bench"))
            layout, blocks = built.layout, built.blocks
        else:
            built, prep, _ = timed(lambda: encrypted_rows(key, scorer, vectors))
            layout, blocks = built.layout, built.blocks
        runs = [search(key, scorer, vectors[i] + 0.01, layout, blocks, mode == "encrypted") for i in range(probes)]
        scores = runs[-1]["scores"]
        exact = vectors @ (vectors[probes - 1] + 0.01)
        report[mode] = {
            "layout": layout.to_dict(),
            "prepare_s": round(prep, 2),
            "search_wall_ms": round(1e3 * statistics.median(r["wall"] for r in runs), 1),
            "search_cpu_ms": round(1e3 * statistics.median(r["cpu"] for r in runs), 1),
            "encrypt_probe_wall_ms": round(1e3 * statistics.median(r["encrypt_wall"] for r in runs), 1),
            "probe_message_bytes": len(key.probe_message(vectors[0], layout)),
            "scores_bytes": len(ciphertexts_to_bytes(scorer.score(runs[-1]["probe"], blocks, mode == "encrypted"))),
            "gallery_ciphertext_bytes": len(ciphertexts_to_bytes([c for b in blocks for c in b]))
            if mode == "encrypted"
            else None,
            "max_score_error": float(np.abs(scores - exact).max()),
        }
    return report


def service(key: ClientKey, people: int, probes: int) -> dict:
    """Through the service (``faceprint.service.private``, the ASGI test client in this process): a collection of
    ``people`` (one random template of the default model each); the first manifest (its rows prepared), a second one
    (prepared rows reused), and per probe the whole exchange (encrypt, post, decrypt, decide) and its post alone."""
    import tempfile
    from pathlib import Path

    from fastapi.testclient import TestClient

    from faceprint.apikeys import KeyStore
    from faceprint.encrypted import RemoteGallery, identify_privately
    from faceprint.service.app import create_app
    from faceprint.service.settings import ServiceSettings
    from faceprint.tenancy import Tenancy
    from faceprint.types import Template

    rng = np.random.default_rng(people)
    vectors = rng.normal(size=(people, DEFAULT_OPTIONS.model.dimension))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with tempfile.TemporaryDirectory() as folder, Tenancy(Path(folder)).create("bench", "staff") as gallery:
        for n, vector in enumerate(vectors):
            gallery.add_templates(f"person {n}", [Template(vector.astype(np.float32), gallery.model_id)])
        _, token = KeyStore(Path(folder)).create("bench", ["recognize"])
        headers = {"Authorization": f"Bearer {token}"}
        with TestClient(create_app(ServiceSettings(Path(folder), rate_per_second=1e6, rate_burst=10**6))) as client:
            manifests = [timed(lambda: client.get("/v1/collections/staff/private", headers=headers).json())]
            manifests.append(timed(lambda: client.get("/v1/collections/staff/private", headers=headers).json()))
            manifest = manifests[-1][0]
            posts: list[float] = []

            def post(probe: bytes) -> bytes:
                started = time.perf_counter()
                answer = client.post(
                    "/v1/collections/staff/private/scores",
                    params={"version": manifest["version"]},
                    content=probe,
                    headers=headers,
                )
                posts.append(time.perf_counter() - started)
                return answer.content

            server = RemoteGallery(manifest, post, key.parameters)
            exchanges = [timed(lambda v=v: identify_privately(key, v, server))[1] for v in vectors[:probes]]
    return {
        "service_people": people,
        "first_manifest_s": manifests[0][1],
        "cached_manifest_s": manifests[1][1],
        "exchange_s": statistics.median(exchanges),
        "post_s": statistics.median(posts),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=[1000, 10_000, 100_000])
    parser.add_argument("--model", default=DEFAULT_OPTIONS.model.model_id, choices=sorted(EMBEDDING_MODELS))
    parser.add_argument("--probes", type=int, default=5)
    parser.add_argument("--modes", nargs="+", default=["plain", "encrypted"], choices=["plain", "encrypted"])
    parser.add_argument("--no-hit-rate", action="store_true")
    parser.add_argument("--service", type=int, nargs="*", default=[], help="collections of this many people, served")
    args = parser.parse_args()
    key, scorer = ClientKey.generate(), Scorer()
    print(
        json.dumps({"parameters": PARAMETERS.to_dict(), "secret_key_bytes": key.key_bytes(), "server_keys_bytes": 0}),
        flush=True,
    )
    if not args.no_hit_rate:
        print(json.dumps(hit_rate(key, scorer, args.model)), flush=True)
    for people in args.service:
        print(json.dumps(service(key, people, args.probes)), flush=True)
    for size in args.sizes:
        print(
            json.dumps(speed(key, scorer, size, EMBEDDING_MODELS[args.model].dimension, args.probes, args.modes)),
            flush=True,
        )


if __name__ == "__main__":
    sys.exit(main())
