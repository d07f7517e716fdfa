"""A contact sheet: each cluster as a grid of its faces' thumbnails, in one self-contained HTML file."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence

from .clusters import Clusters

#: Faces shown per cluster at most (the best ones); the heading gives the full count.
FACES_SHOWN = 48


def contact_sheet(clusters: Clusters, cluster_ids: Sequence[int], *, faces_shown: int = FACES_SHOWN) -> str:
    """The HTML of a contact sheet of ``cluster_ids`` (thumbnails inlined, so the file stands alone)."""
    sections = [_section(clusters, cluster_id, faces_shown) for cluster_id in cluster_ids]
    return (
        "<!doctype html>\n<html><head><meta charset='utf-8'><title>faceprint clusters</title><style>"
        "body{font-family:sans-serif;margin:1em}h2{font-size:1em;margin:1.2em 0 .3em}"
        ".grid{display:flex;flex-wrap:wrap;gap:4px}figure{margin:0;text-align:center;font-size:.7em;color:#555}"
        "img{width:96px;height:96px;object-fit:cover;display:block}"
        "</style></head><body>\n" + "\n".join(sections) + "\n</body></html>\n"
    )


def _section(clusters: Clusters, cluster_id: int, faces_shown: int) -> str:
    cluster = clusters.cluster(cluster_id)
    faces = clusters.faces(cluster_id)[:faces_shown]
    thumbnails = clusters.thumbnails([face.id for face in faces])
    title = f"cluster {cluster.id}: {html.escape(cluster.name or 'unnamed')}, {cluster.faces} faces"
    if cluster.faces > len(faces):
        title += f", the best {len(faces)} shown"
    if cluster.ignored:
        title += " (ignored)"
    figures = [
        f"<figure title='{html.escape(face.source, quote=True)}'><img alt='face {face.id}' "
        f"src='data:image/jpeg;base64,{base64.b64encode(thumbnails[face.id]).decode()}'>{face.id}</figure>"
        for face in faces
        if face.id in thumbnails
    ]
    return f"<section><h2>{title}</h2><div class='grid'>{''.join(figures)}</div></section>"
