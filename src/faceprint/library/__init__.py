"""Photo libraries: scan a collection of photos incrementally into the gallery, every face with its template,
box, quality and thumbnail (``scan``)."""

from __future__ import annotations

from .scan import ScanSummary, scan

__all__ = ["ScanSummary", "scan"]
