"""dlib's shape predictor models, converted once into a file that loads in milliseconds.

dlib parses ``shape_predictor_68_face_landmarks.dat`` (100 MB: every float written as a variable-length
mantissa and exponent) in 0.55 s of CPU, more than a worker process spends on anything else before its first
face (BENCHMARKS.md, "Issue 13: worker start-up"). The pipeline fits the 68 points only for some faces (a
turned head's pose, ``landmarks68``, SFace alone), yet nearly every worker meets one. Here the model is
converted once into a ``.npy`` file in the user cache directory (keyed by the source's sha256, like the
converted ONNX graphs; the conversion takes a few seconds, once) and memory-mapped at each start;
``align.CascadePredictor`` runs it as dlib runs it (``dlib/image_processing/shape_predictor.h``).

dlib's serialization of the model: version (1), the initial shape (a column ``matrix<float>``: minus its rows,
minus its columns, the values), the forests (a vector per cascade of trees, each tree its splits (``idx1``,
``idx2``, ``thresh``) and its leaves (column matrices)), per cascade the feature pixels' anchor points and their
offsets ``(x, y)``. Integers are a control byte (low nibble: byte count, 0x80: negative) and the bytes; floats
are two such integers, mantissa and exponent.
"""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import numpy as np

from .errors import ModelError
from .models import model_path
from .resnet_onnx import DlibReader, default_cache_dir, known_sha256, write_atomically

#: Bump when the conversion changes: cached models of another version are rebuilt.
CONVERSION_VERSION = 1
_SHAPE_VERSION = 1
#: A float32 value as dlib writes most: 3 mantissa bytes, 1 exponent byte, each after its control byte.
_FLOAT_BYTES = 6
#: Runs of floats shorter than this are read integer by integer (numpy's calls cost more for them).
_NUMPY_RUN = 32
#: dlib writes infinities and NaN as exponents from 32000 on.
_SPECIAL_EXPONENT = 32000


class _FastReader(DlibReader):
    """dlib's reader with whole runs of floats decoded by numpy when they all have the common width."""

    def read_column(self) -> np.ndarray:
        """A ``matrix<float, 0, 1>``."""
        rows, columns = -self.read_int(), -self.read_int()
        if columns != 1 or rows < 0:
            raise ModelError(f"dlib shape model: a {rows}x{columns} matrix where a column was expected")
        return self.read_floats(rows)

    def read_tokens(self, count: int) -> list[int]:
        """The next ``count`` integers (a float is two: mantissa and exponent), without a call per integer."""
        data, position, values = self.data, self.pos, []
        try:
            for _ in range(count):
                control = data[position]
                end = position + 1 + (control & 0x0F)
                value = int.from_bytes(data[position + 1 : end], "little")
                values.append(-value if control & 0x80 else value)
                position = end
        except IndexError:
            position = len(data) + 1
        if position > len(data):
            raise ModelError(f"dlib model file truncated at byte {len(data)}")
        self.pos = position
        return values

    def read_floats(self, count: int) -> np.ndarray:
        """``count`` floats: long runs of the common width decoded by numpy at once, the rest integer by integer."""
        if count < _NUMPY_RUN:
            return _floats(self.read_tokens(2 * count))
        values: list[np.ndarray] = []
        while count:
            common = self._common_floats(count)
            values.append(common)
            count -= len(common)
            if count:
                values.append(_floats(self.read_tokens(2)))
                count -= 1
        return np.concatenate(values)

    def _common_floats(self, most: int) -> np.ndarray:
        """The floats from here on, up to ``most``, that are written in :data:`_FLOAT_BYTES` bytes."""
        available = min(most, (len(self.data) - self.pos) // _FLOAT_BYTES)
        raw = np.frombuffer(self.data, np.uint8, available * _FLOAT_BYTES, self.pos).reshape(-1, _FLOAT_BYTES)
        regular = ((raw[:, 0] & 0x7F) == 3) & ((raw[:, 4] & 0x7F) == 1)
        raw = raw[: len(raw) if regular.all() else int(np.argmin(regular))].astype(np.int64)
        mantissa = raw[:, 1] | raw[:, 2] << 8 | raw[:, 3] << 16
        exponent = raw[:, 5]
        self.pos += len(raw) * _FLOAT_BYTES
        signed_mantissa = np.where(raw[:, 0] & 0x80, -mantissa, mantissa).astype(np.float32)
        return np.ldexp(signed_mantissa, np.where(raw[:, 4] & 0x80, -exponent, exponent).astype(np.int32))


def _floats(tokens: list[int]) -> np.ndarray:
    """Floats from their (mantissa, exponent) pairs; dlib's infinities and NaN are refused (no model has them)."""
    mantissas, exponents = np.array(tokens[0::2], dtype=np.float64), np.array(tokens[1::2], dtype=np.int64)
    if np.any(np.abs(exponents) >= _SPECIAL_EXPONENT):
        raise ModelError("dlib shape model: a value is infinite or not a number")
    return np.ldexp(mantissas, exponents).astype(np.float32)


def read_shape_model(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The arrays of a dlib shape predictor file (see the module's docstring); every cascade alike."""
    reader = _FastReader(Path(path).read_bytes())
    if reader.read_int() != _SHAPE_VERSION:
        raise ModelError(f"{path}: not a dlib shape predictor (version {_SHAPE_VERSION} expected)")
    initial = reader.read_column()
    forests = [[_read_tree(reader) for _ in range(reader.read_int())] for _ in range(reader.read_int())]
    anchors = [reader.read_ints(reader.read_int()) for _ in range(reader.read_int())]
    deltas = [reader.read_floats(2 * reader.read_int()).reshape(-1, 2) for _ in range(reader.read_int())]
    if reader.pos != len(reader.data):
        raise ModelError(f"{path}: {len(reader.data) - reader.pos} bytes after the shape model")
    try:
        return {
            "initial": initial.reshape(-1, 2),
            "idx1": np.array([[tree[0] for tree in forest] for forest in forests], dtype=np.int32),
            "idx2": np.array([[tree[1] for tree in forest] for forest in forests], dtype=np.int32),
            "thresh": np.array([[tree[2] for tree in forest] for forest in forests], dtype=np.float32),
            "leaves": np.array([[tree[3] for tree in forest] for forest in forests], dtype=np.float32),
            "anchors": np.array(anchors, dtype=np.int32),
            "deltas": np.array(deltas, dtype=np.float32),
        }
    except ValueError as exc:  # ragged: cascades or trees of different sizes
        raise ModelError(f"{path}: cascades of different sizes are not supported ({exc})") from None


def _read_tree(reader: _FastReader) -> tuple[list[int], list[int], np.ndarray, np.ndarray]:
    """A tree's splits (each ``idx1``, ``idx2``, then ``thresh`` as mantissa and exponent) and its leaves."""
    splits = reader.read_tokens(4 * reader.read_int())
    thresh = _floats([value for i in range(2, len(splits), 4) for value in splits[i : i + 2]])
    leaves = np.stack([reader.read_column() for _ in range(reader.read_int())])
    return splits[0::4], splits[1::4], thresh, leaves


# -- the converted model, cached ----------------------------------------------------------


def _record_dtype(model: dict[str, np.ndarray]) -> np.dtype:
    fields = [(name, array.dtype, array.shape) for name, array in model.items()]
    # The source's digest last: a file that does not end as it was written is not used.
    return np.dtype([*fields, ("source_sha256", "S64")])


def converted_path(points: int, cache_dir: Path | None = None) -> tuple[Path, Path, str]:
    """The converted model's cached path, its source ``.dat`` file and the source's sha256."""
    source = model_path(f"shape_predictor_{points}_face_landmarks.dat")
    cache_dir = cache_dir if cache_dir is not None else default_cache_dir()
    digest = known_sha256(source, cache_dir)
    return cache_dir / f"dlib-shape{points}-{digest[:16]}-c{CONVERSION_VERSION}.npy", source, digest


def load_shape_model(points: int, cache_dir: Path | None = None) -> np.ndarray:
    """The converted shape model (one record of named arrays, memory-mapped): from the cache if it checks out,
    else converted from dlib's file and cached (an unwritable cache only costs a conversion next time)."""
    cached, source, digest = converted_path(points, cache_dir)
    record = _read_valid(cached, digest)
    if record is not None:
        return record
    model = read_shape_model(source)
    record = np.zeros((), _record_dtype(model))
    for name, array in model.items():
        record[name] = array
    record["source_sha256"] = digest.encode()
    with contextlib.suppress(OSError):
        write_atomically(cached, _npy_bytes(record))
    return record


def _npy_bytes(record: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, record, allow_pickle=False)
    return buffer.getvalue()


def _read_valid(path: Path, digest: str) -> np.ndarray | None:
    try:
        record = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError):  # missing, empty, truncated (shorter than its header says), not .npy
        return None
    names = record.dtype.names or ()
    if record.shape != () or names[-1:] != ("source_sha256",) or record["source_sha256"].item() != digest.encode():
        return None
    return record
