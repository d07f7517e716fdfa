"""Real faces-dev templates plus synthetic distractors drawn to match their distribution.

Why not uniform noise: random unit vectors in 128-d are almost orthogonal to everything
(similarity ≈ 0 ± 0.09), while real faces of different people score 0.2-0.6 with each other
(dlib templates occupy a narrow cone). An index that looks fast and exact on noise can be
slow or wrong on faces, so the distractors must crowd the real templates as other faces would.

The generator is a two-level Gaussian fitted on faces-dev (1,783 templates, ~600 people):

* identity centres ~ N(μ, Σ_between): μ and Σ_between from the per-person mean templates,
  Σ_between corrected for the within-person noise that averaging a few photos leaves in a mean
  (Σ_means − mean over people of Σ_within / n_photos), eigenvalues clipped at 0;
* each template of a synthetic person = centre + N(0, Σ_within), Σ_within fitted on the
  residuals of the real templates from their person's mean (people with ≥ 2 photos,
  rescaled by n/(n−1) since the mean was estimated from the same photos);
* then renormalised to unit length, like real templates; for a fused model, each part is first
  renormalised and scaled by the square root of its weight, as ``faceprint.embedding.Fused`` builds one.

The fit is per model (``real_templates(model)``: faces-dev embedded by the pipeline that makes that
model's templates, ``faceprint.profiles.options_for_model``): each model has its own cone and spread.

``check`` compares the similarity of distractors to real templates with the real impostor
scores, and synthetic genuine pairs with real ones (printed by ``bench/index_scale.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import common
from faceprint.embedding import normalise, part_templates
from faceprint.models import EmbeddingModel
from faceprint.pipeline import DEFAULT_OPTIONS
from faceprint.profiles import options_for_model


@dataclass(frozen=True)
class RealTemplates:
    vectors: np.ndarray
    identities: np.ndarray  # integer code per template
    paths: list[str]


def real_templates(model: EmbeddingModel = DEFAULT_OPTIONS.model) -> RealTemplates:
    """``model``'s templates of every faces-dev image, by its pipeline (cached by bench/common.py)."""
    root = common.faces_dev()
    paths, identities = common.read_images(root)
    embeddings = common.embed_faceprint(root, paths, options_for_model(model), label=f"faces-dev {model.model_id}")
    found = embeddings.found
    _, codes = np.unique(np.array(identities)[found], return_inverse=True)
    kept = [p for p, ok in zip(paths, found) if ok]
    return RealTemplates(embeddings.vectors[found].astype(np.float32), codes, kept)


@dataclass(frozen=True)
class Generator:
    mean: np.ndarray
    between: np.ndarray  # Cholesky-like factor: centre = mean + between @ z
    within: np.ndarray
    #: the model whose templates these imitate (a fused model's parts are unit vectors scaled by their weights)
    model: EmbeddingModel = DEFAULT_OPTIONS.model

    @classmethod
    def fit(cls, real: RealTemplates, model: EmbeddingModel = DEFAULT_OPTIONS.model) -> Generator:
        counts = np.bincount(real.identities)
        means = np.stack([real.vectors[real.identities == c].mean(axis=0) for c in range(len(counts))])
        multi = counts[real.identities] >= 2
        residuals = (real.vectors - means[real.identities])[multi]
        n = counts[real.identities][multi][:, None]
        within_cov = np.cov((residuals * np.sqrt(n / (n - 1))).T)
        between_cov = np.cov(means.T) - within_cov * np.mean(1.0 / counts)
        return cls(means.mean(axis=0), _factor(between_cov), _factor(within_cov), model)

    def sample(self, people: int, per_person: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``(vectors, person index)`` for ``people`` synthetic people with ``per_person`` templates each."""
        dim = len(self.mean)
        out = np.empty((people * per_person, dim), np.float32)
        chunk = 100_000
        for start in range(0, people, chunk):
            count = min(chunk, people - start)
            centres = self.mean + rng.standard_normal((count, dim)) @ self.between.T
            rows = np.repeat(centres, per_person, axis=0)
            rows += rng.standard_normal(rows.shape) @ self.within.T
            out[start * per_person : (start + count) * per_person] = self._as_templates(rows)
        return out, np.repeat(np.arange(people), per_person)

    def _as_templates(self, rows: np.ndarray) -> np.ndarray:
        """Unit rows; a fused model's parts each unit length and scaled by the square root of their weight."""
        if not self.model.parts:
            return rows / np.linalg.norm(rows, axis=1, keepdims=True)
        weights = [weight for _, weight in self.model.parts]
        return normalise(np.hstack([np.sqrt(w) * part for w, part in zip(weights, part_templates(rows, self.model))]))


def _factor(cov: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(cov)
    return vectors * np.sqrt(np.clip(values, 0, None))


def check(real: RealTemplates, generator: Generator, rng: np.random.Generator) -> dict[str, list[float]]:
    """Score quantiles of real impostor/genuine pairs and their synthetic counterparts."""
    sims = real.vectors @ real.vectors.T
    same = real.identities[:, None] == real.identities[None, :]
    upper = np.triu(np.ones_like(same), 1).astype(bool)
    synthetic, _ = generator.sample(2000, 2, rng)
    vs_real = (synthetic[::2] @ real.vectors.T).ravel()
    synthetic_genuine = np.einsum("ij,ij->i", synthetic[::2], synthetic[1::2])
    quantiles = [0.01, 0.1, 0.5, 0.9, 0.99, 0.999]
    return {
        "quantiles": quantiles,
        "real impostor": np.quantile(sims[upper & ~same], quantiles).tolist(),
        "distractor vs real": np.quantile(vs_real, quantiles).tolist(),
        "real genuine": np.quantile(sims[upper & same], quantiles).tolist(),
        "synthetic genuine": np.quantile(synthetic_genuine, quantiles).tolist(),
    }
