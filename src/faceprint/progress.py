"""How library code reports progress: through a callback its caller passes (front ends draw the bars)."""

from __future__ import annotations

from collections.abc import Callable

#: ``on_progress(description, done, total)``: ``done`` of ``total`` units of the work ``description`` names
#: are finished. Called once with ``done == 0`` when the work starts, then as it advances, last with ``done == total``.
OnProgress = Callable[[str, int, int], None]
