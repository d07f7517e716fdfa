"""The pipeline across a Ray cluster, for batches beyond one machine (``pip install 'faceprint[ray]'``).

``RayRunner(address)`` is a drop-in for ``faceprint.pipeline.process_files`` (a ``BatchRunner``): the inputs
become a Ray Data dataset, ``map_batches`` runs ``process_chunk`` on an actor pool (each actor a process that
loads the models once, at its first batch, and keeps them), and the results come back to the caller in input
order. The caller (``scan``, ``enroll_people``, ``embed``) writes them into the gallery or the file exactly
as after a local run; every actor computes with one onnxruntime thread, as local worker processes do, so the
templates are the same.

Every node needs faceprint installed (the same version) and the photos at the same paths: a shared or
synced filesystem; only the paths travel.
"""

from __future__ import annotations

import dataclasses
import pickle
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..image import ImageSource
from ..pipeline import DEFAULT_OPTIONS, ImageResult, PipelineOptions, process_chunk


@dataclass(frozen=True)
class RayRunner:
    """Run the pipeline on the Ray cluster at ``address`` (``"auto"``: the one this machine belongs to, or
    ``ray://host:10001`` for a remote one through Ray Client)."""

    address: str

    def __call__(
        self,
        sources: Sequence[ImageSource],
        options: PipelineOptions = DEFAULT_OPTIONS,
        *,
        workers: int | None = None,
        on_done: Callable[[int], None] | None = None,
        chunk_size: int = 8,
        embed: bool = True,
        thumbnail_side: int = 0,
    ) -> Iterator[ImageResult]:
        """``process_files`` on the cluster: ``workers`` actors (default: one per CPU of the cluster)."""
        if not sources:
            return
        ray = _connect(self.address)
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # results in input order, as process_files gives them
        actors = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        dataset = ray.data.from_items([{"source": pickle.dumps(source)} for source in sources])
        results = dataset.map_batches(
            _PipelineActor,
            fn_constructor_kwargs={"options": options, "embed": embed, "thumbnail_side": thumbnail_side},
            batch_size=chunk_size,
            concurrency=actors,
            num_cpus=1,
            batch_format="numpy",
        )
        for batch in results.iter_batches(batch_size=chunk_size, batch_format="numpy"):
            found = [pickle.loads(item) for item in batch["result"]]
            yield from found
            if on_done:
                on_done(len(found))


class _PipelineActor:
    """One Ray actor: a process running the pipeline over batches, its models loaded once."""

    def __init__(self, options: PipelineOptions, embed: bool, thumbnail_side: int) -> None:
        self.options = dataclasses.replace(options, threads=1)
        self.embed = embed
        self.thumbnail_side = thumbnail_side

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        sources = [pickle.loads(item) for item in batch["source"]]
        results = process_chunk(sources, self.options, self.embed, self.thumbnail_side)
        return {"result": np.array([pickle.dumps(result) for result in results], dtype=object)}


def _connect(address: str) -> Any:
    try:
        import ray
        import ray.data  # ray.data is an attribute of ray only once imported
    except ImportError:
        raise ImportError("running on Ray needs the ray extra: pip install 'faceprint[ray]'") from None
    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False, include_dashboard=False)
    return ray
