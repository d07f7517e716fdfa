"""Photo libraries: scan a collection of photos incrementally into the gallery, every face with its template,
box, quality and thumbnail (``scan``), and group the faces of people nobody enrolled into clusters that the
owner names, merges, splits or ignores (``Clusters``)."""

from __future__ import annotations

from .clusters import Cluster, Clusters, ClusterUpdate, LibraryFace
from .scan import ScanSummary, scan

__all__ = ["Cluster", "ClusterUpdate", "Clusters", "LibraryFace", "ScanSummary", "scan"]
