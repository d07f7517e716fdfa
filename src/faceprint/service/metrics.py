"""Prometheus text metrics of one server process: requests, latency, faces processed, queue depth.

Kept by hand (a few counters and one histogram) rather than with prometheus_client: nothing to install, and
the text format is small. With ``--workers N`` each process answers with its own figures, and says which it is
(``faceprint_process{pid="..."} 1``): a scrape lands on whichever process takes the connection.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Iterator

#: Upper bounds of the latency histogram's buckets, in seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, str, int]] = Counter()
        self.buckets: Counter[tuple[str, float]] = Counter()
        self.latency_sum: dict[str, float] = {}
        self.latency_count: Counter[str] = Counter()
        self.faces = 0
        #: Images waiting for, or holding, a processing slot.
        self.queue_depth = 0
        #: Video jobs queued or running in this process.
        self.video_jobs = 0

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[method, route, status] += 1
            self.latency_sum[route] = self.latency_sum.get(route, 0.0) + seconds
            self.latency_count[route] += 1
            for bound in LATENCY_BUCKETS:
                if seconds <= bound:
                    self.buckets[route, bound] += 1

    def faces_processed(self, count: int) -> None:
        with self._lock:
            self.faces += count

    def queued(self, change: int) -> None:
        with self._lock:
            self.queue_depth += change

    def jobs(self, change: int) -> None:
        with self._lock:
            self.video_jobs += change

    def render(self) -> str:
        with self._lock:
            return "\n".join(self._lines()) + "\n"

    def _lines(self) -> Iterator[str]:
        yield "# HELP faceprint_process The server process whose figures these are (one per --workers process)."
        yield "# TYPE faceprint_process gauge"
        yield f'faceprint_process{{pid="{os.getpid()}"}} 1'
        yield "# HELP faceprint_requests_total HTTP requests answered."
        yield "# TYPE faceprint_requests_total counter"
        for (method, route, status), count in sorted(self.requests.items()):
            yield f'faceprint_requests_total{{method="{method}",route="{route}",status="{status}"}} {count}'
        yield "# HELP faceprint_request_seconds Time to answer a request."
        yield "# TYPE faceprint_request_seconds histogram"
        for route in sorted(self.latency_count):
            for bound in LATENCY_BUCKETS:
                yield f'faceprint_request_seconds_bucket{{route="{route}",le="{bound}"}} {self.buckets[route, bound]}'
            yield f'faceprint_request_seconds_bucket{{route="{route}",le="+Inf"}} {self.latency_count[route]}'
            yield f'faceprint_request_seconds_sum{{route="{route}"}} {self.latency_sum[route]:.6f}'
            yield f'faceprint_request_seconds_count{{route="{route}"}} {self.latency_count[route]}'
        yield "# HELP faceprint_faces_processed_total Faces detected in uploaded images."
        yield "# TYPE faceprint_faces_processed_total counter"
        yield f"faceprint_faces_processed_total {self.faces}"
        yield "# HELP faceprint_queue_depth Images waiting for or holding a processing slot."
        yield "# TYPE faceprint_queue_depth gauge"
        yield f"faceprint_queue_depth {self.queue_depth}"
        yield "# HELP faceprint_video_jobs Video jobs queued or running in this process."
        yield "# TYPE faceprint_video_jobs gauge"
        yield f"faceprint_video_jobs {self.video_jobs}"
