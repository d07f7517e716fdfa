"""Who each track is: quality-weighted best shots, one decision per track, revised only on strong evidence.

A track does not embed every frame. It keeps the best-quality faces seen at detection
frames; once ``shots`` usable ones are in (or ``max_wait`` seconds passed), the best of them
are embedded in one batch with every other track deciding on that frame, their templates are
averaged with quality weights, and the gallery decides. After that, one new best shot per
``recheck`` seconds refines the track's average (and its score); the name changes only when
the latest ``shots`` shots name someone else at a false-match rate ``revise_factor`` times
stricter than the operating one *and* no longer match the current name at the operating
threshold (a tracker that swapped faces, or a first decision made on poor shots); the
evidence then restarts from those shots. A name is dropped for ``unknown`` only when the
latest shots fail it even at a ``revise_factor`` times looser rate. Rates are false-positive
identification rates at the gallery's size (``Gallery.identification_point``). Every change of a
shown label is recorded in ``revised`` (the video timeline writes it as an event of its own). A
track whose evidence is not enough to name it (the uncertain band, low quality, a target FPIR
the gallery cannot promise) is labelled ``uncertain``, never with a name. Unknown
tracks get ``unknown-1``, ``unknown-2``... and a stranger who comes back (a new track whose
average matches an earlier unknown's at the gallery threshold) gets their earlier label back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..embedding import normalise
from ..gallery import Gallery
from ..match import identification_point
from ..pipeline import DEFAULT_OPTIONS, LocatedFace, PipelineOptions, embed_located, template_of
from ..types import Candidate, Decision, Identification, Template

#: The label of a track that cannot be named yet (its evidence lies in the uncertain band, is of low quality,
#: or the gallery cannot promise the FPIR): shown as such, and decided again as better shots come.
UNCERTAIN = "uncertain"


@dataclass(frozen=True)
class IdentityOptions:
    """When a track embeds and decides; see the module docstring."""

    shots: int = 3
    max_shots: int = 6
    min_quality: float = 0.15
    max_wait: float = 1.0
    recheck: float = 1.0
    revise_factor: float = 100.0
    #: Operating false-positive identification rate (None: the gallery's, as in ``Gallery.identify``).
    fpir: float | None = None


@dataclass
class Shot:
    """A face seen at a detection frame, a candidate for embedding."""

    frame: int
    time: float
    located: LocatedFace
    #: The face with some surroundings, cut from the frame (for best-shot crops).
    crop: np.ndarray
    template: np.ndarray | None = None
    #: Embedded after the track's identity was decided: evidence for a revision.
    later: bool = False

    @property
    def quality(self) -> float:
        return self.located.face.quality.score

    @property
    def vector(self) -> np.ndarray:
        """The template of an embedded shot (only those are averaged)."""
        assert self.template is not None, "the shot was not embedded"
        return self.template


@dataclass
class TrackIdentity:
    """The identity evidence and decision of one track."""

    track_id: int
    first_time: float
    label: str | None = None
    person_id: int | None = None
    similarity: float | None = None
    decision: Decision | None = None
    reason: str | None = None
    revisions: int = 0
    decided_at: int | None = None
    embedded: list[Shot] = field(default_factory=list)
    waiting: list[Shot] = field(default_factory=list)
    best: Shot | None = None
    last_embed_time: float = -1e9

    @property
    def decided(self) -> bool:
        return self.label is not None

    @property
    def is_known(self) -> bool:
        return self.person_id is not None

    def observe(self, shot: Shot, options: IdentityOptions) -> None:
        """Keep ``shot`` if it is among the best seen since the last embedding."""
        if self.best is None or shot.quality > self.best.quality:
            self.best = shot
        if shot.quality < options.min_quality:
            return
        self.waiting.append(shot)
        self.waiting.sort(key=lambda s: -s.quality)
        del self.waiting[options.max_shots :]

    def shots_to_embed(self, now: float, options: IdentityOptions, *, final: bool = False) -> list[Shot]:
        """The best waiting shots, when it is time to (re)decide; else nothing."""
        if not self.waiting:
            # A track ending without one usable shot still gets a decision, from its best one.
            return [self.best] if final and not self.embedded and self.best is not None else []
        if not self.decided:
            ready = len(self.waiting) >= options.shots or now - self.first_time >= options.max_wait or final
            return self.waiting[: options.shots] if ready else []
        better = self.waiting[0].quality >= 0.8 * min(s.quality for s in self.embedded)
        # An uncertain track is still deciding: it takes every good shot, not one per ``recheck``.
        due = self.label == UNCERTAIN or now - self.last_embed_time >= options.recheck
        return self.waiting[:1] if better and (due or final) else []

    def template(self, shots: Sequence[Shot] | None = None) -> np.ndarray:
        """Quality-weighted mean of the templates of ``shots`` (default: every embedded shot)."""
        shots = self.embedded if shots is None else shots
        weights = np.array([max(s.quality, 1e-3) for s in shots], np.float32)
        return normalise(np.average(np.stack([s.vector for s in shots]), axis=0, weights=weights))

    def absorb(self, shots: Sequence[Shot], now: float, options: IdentityOptions) -> None:
        """Add newly embedded shots, and start the next selection afresh; beyond ``max_shots``,
        drop the worst of the shots before the last ``shots``."""
        self.waiting = []  # what was not chosen is older than what comes next
        for shot in shots:
            shot.later = self.decided
        self.embedded = [*self.embedded, *shots]
        while len(self.embedded) > options.max_shots:
            self.embedded.remove(min(self.embedded[: -options.shots], key=lambda s: s.quality))
        self.last_embed_time = now


@dataclass(frozen=True)
class Revision:
    """A shown label replaced by another: the timeline records it as an event of its own."""

    track_id: int
    frame: int
    previous: str
    label: str
    person_id: int | None
    similarity: float | None
    decision: Decision | None
    reason: str | None


class IdentityResolver:
    """Decides the identity of every track, batching embeddings and gallery searches per frame."""

    def __init__(
        self,
        gallery: Gallery | None,
        options: IdentityOptions = IdentityOptions(),
        pipeline: PipelineOptions = DEFAULT_OPTIONS,
    ) -> None:
        self.gallery = gallery
        self.options = options
        self.pipeline = gallery.options if gallery is not None else pipeline
        # The one decision rule, as in identify: the gallery's FPIR point at its size unless told otherwise.
        self.point = (
            gallery.identification_point(options.fpir)
            if gallery is not None
            else identification_point(self.pipeline.model.model_id, templates=1, fpir=options.fpir)
        )
        # Unsupported target: nothing is named, and strangers are told apart at the strictest threshold there is.
        strictest = self.point.calibration.thresholds[-1]
        self.threshold = self.point.threshold if self.point.threshold is not None else strictest
        # Revisions need strong evidence: a match at a stricter, or a mismatch at a looser, rate.
        self.strict_threshold = self.point.threshold_for(self.point.fpir / options.revise_factor) or max(
            strictest, self.threshold
        )
        self.loose_threshold = self.point.threshold_for(min(self.point.fpir * options.revise_factor, 0.5)) or (
            self.threshold
        )
        self.identities: dict[int, TrackIdentity] = {}
        #: Changes of a shown label, oldest first (``VideoProcessor`` takes them as they come).
        self.revised: list[Revision] = []
        self._unknowns: list[tuple[str, np.ndarray]] = []
        self.embeddings = 0

    def identity(self, track_id: int, now: float) -> TrackIdentity:
        if track_id not in self.identities:
            self.identities[track_id] = TrackIdentity(track_id, now)
        return self.identities[track_id]

    def resolve(self, track_ids: Sequence[int], frame: int, now: float, *, final: bool = False) -> None:
        """Embed and decide for those of ``track_ids`` that are due, in one batch."""
        due = [
            (self.identities[t], self.identities[t].shots_to_embed(now, self.options, final=final)) for t in track_ids
        ]
        due = [(identity, shots) for identity, shots in due if shots]
        if not due:
            return
        shots = [shot for _, batch in due for shot in batch]
        faces = embed_located([shot.located for shot in shots], self.pipeline)
        self.embeddings += len(faces)
        for shot, face in zip(shots, faces):
            shot.template = template_of(face).vector
        for identity, batch in due:
            identity.absorb(batch, now, self.options)
        new = [identity for identity, _ in due if not identity.decided]
        for identity, verdict in zip(new, self._search(new, [i.template() for i in new])):
            self._decide(identity, verdict, frame)
        known = [identity for identity, _ in due if identity.decided]
        whole = self._search(known, [i.template() for i in known])
        for identity, verdict in zip(known, whole):
            if identity.is_known and verdict is not None:
                identity.similarity = _similarity_to(identity.person_id, verdict.candidates)
            elif (
                identity.label == UNCERTAIN
                and verdict is not None
                and (verdict.match or verdict.decision == "no_match")
            ):
                # An uncertain track is still gathering evidence: all its shots together may settle it.
                self._decide(identity, verdict, frame)
        # Revisions weigh only shots taken since the decision, and only once there are enough of them.
        recent = [(i, [s for s in i.embedded if s.later][-self.options.shots :]) for i in known]
        recent = [(identity, shots) for identity, shots in recent if len(shots) >= self.options.shots]
        verdicts = self._search([i for i, _ in recent], [i.template(shots) for i, shots in recent])
        for (identity, shots), verdict in zip(recent, verdicts):
            self._revise(identity, shots, verdict, frame)

    def _search(self, identities: list[TrackIdentity], templates: list[np.ndarray]) -> list[Identification | None]:
        if self.gallery is None or not identities:
            return [None] * len(identities)
        model_id = self.pipeline.model.model_id
        # Tracks deciding on the same frame are faces of one photo: nobody is given to two of them.
        # The quality judged is that of the best shot averaged: a track is judged by its best evidence.
        faces = [
            dataclasses.replace(
                max(identity.embedded, key=lambda s: s.quality).located.face, template=Template(t, model_id)
            )
            for identity, t in zip(identities, templates)
        ]
        return list(self.gallery.identify_faces(faces, fpir=self.point.fpir))

    def _decide(self, identity: TrackIdentity, verdict: Identification | None, frame: int) -> None:
        previous = identity.label
        match = verdict.match if verdict else None
        identity.decided_at = frame
        identity.decision, identity.reason = (verdict.decision, verdict.reason) if verdict else (None, None)
        if match is not None:
            identity.label, identity.person_id, identity.similarity = match.name, match.person_id, match.similarity
        else:
            uncertain = verdict is not None and verdict.decision == "uncertain"
            identity.label = UNCERTAIN if uncertain else self._unknown_label(identity.template())
            identity.person_id = None
            identity.similarity = verdict.candidates[0].similarity if verdict and verdict.candidates else None
        if previous is not None and previous != identity.label:
            identity.revisions += 1
            self.revised.append(
                Revision(
                    identity.track_id,
                    frame,
                    previous,
                    identity.label,
                    identity.person_id,
                    identity.similarity,
                    identity.decision,
                    identity.reason,
                )
            )

    def _revise(self, identity: TrackIdentity, shots: list[Shot], recent: Identification | None, frame: int) -> None:
        """Keep the decision unless the latest shots strongly say otherwise (a tracker that swapped
        faces, or a first decision made on poor shots); then start the evidence afresh from them."""
        match, candidates = (recent.match, recent.candidates) if recent else (None, ())
        of_current = _candidate_of(identity.person_id, candidates)
        current = of_current.score if of_current is not None else 0.0
        if match is not None and match.person_id != identity.person_id:
            change = match.score >= self.strict_threshold and current < self.threshold
        else:
            change = match is None and identity.is_known and current < self.loose_threshold
        if change:
            identity.embedded = shots
            for shot in shots:
                shot.later = False
            self._decide(identity, recent, frame)

    def _unknown_label(self, template: np.ndarray) -> str:
        """The label of an earlier stranger this template matches, else a new ``unknown-N``."""
        if self._unknowns:
            scores = np.stack([vector for _, vector in self._unknowns]) @ template
            best = int(np.argmax(scores))
            if scores[best] >= self.threshold:
                label = self._unknowns[best][0]
                self._unknowns[best] = (label, normalise(self._unknowns[best][1] + template))
                return label
        label = f"unknown-{len(self._unknowns) + 1}"
        self._unknowns.append((label, template))
        return label

    def finish(self, track_ids: Sequence[int], frame: int, now: float) -> None:
        """Decide for tracks that end before their evidence was complete, with what they have."""
        self.resolve([t for t in track_ids if not self.identities[t].decided], frame, now, final=True)


def _candidate_of(person_id: int | None, candidates: Sequence[Candidate]) -> Candidate | None:
    return next((c for c in candidates if c.person_id == person_id), None) if person_id else None


def _similarity_to(person_id: int | None, candidates: Sequence[Candidate]) -> float | None:
    candidate = _candidate_of(person_id, candidates)
    return candidate.similarity if candidate is not None else None
