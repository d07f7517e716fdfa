"""What a running service is configured with (``faceprint serve`` options, or ``$FACEPRINT_SERVICE``)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path

#: The environment variable that hands the settings to every uvicorn worker process.
SETTINGS_ENV = "FACEPRINT_SERVICE"


@dataclass(frozen=True)
class ServiceSettings:
    data_dir: Path
    #: Largest uploaded file, in bytes.
    max_upload_bytes: int = 10 * 1024 * 1024
    #: Most files in one request (faces added from several photos).
    max_files: int = 10
    #: Largest decoded image, in pixels (beyond it an upload is refused before it is decoded in full).
    max_pixels: int = 40_000_000
    #: Most faces of one image decided or described in an answer (main faces first).
    max_faces: int = 50
    #: Requests per second each API key may make on average, and in a burst.
    rate_per_second: float = 20.0
    rate_burst: int = 40
    #: Images of concurrent requests run through the pipeline together, at most (1: one request at a time).
    batch_images: int = 8
    #: Video jobs waiting in this process's queue at most (one runs at a time per process); beyond: 503.
    max_queued_jobs: int = 4

    @property
    def max_request_bytes(self) -> int:
        return self.max_upload_bytes * self.max_files + 64 * 1024

    def to_env(self) -> str:
        return json.dumps({**asdict(self), "data_dir": str(self.data_dir)})

    @classmethod
    def from_env(cls) -> ServiceSettings:
        data = json.loads(os.environ[SETTINGS_ENV])
        known = {f.name for f in fields(cls)}
        return cls(**{**{k: v for k, v in data.items() if k in known}, "data_dir": Path(data["data_dir"])})
