"""Minimal .npy (format 1.0/2.0/3.0) reader and v1.0 writer for 2-D float32, without numpy.

numpy would add ~55 MB to the layer; the stdlib `array` module does the job.
"""

from __future__ import annotations

import ast
import struct
import sys
from array import array
from collections.abc import Sequence

MAGIC = b"\x93NUMPY"


class NpyError(ValueError):
    pass


def header_f32(rows: int, cols: int) -> bytes:
    """The v1.0 .npy header of a little-endian float32 `[rows, cols]` array."""
    header = f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}"
    # Pad with spaces so that magic + 2 + 2 + header + '\n' is a multiple of 64.
    unpadded = len(MAGIC) + 2 + 2 + len(header) + 1
    header += " " * ((64 - unpadded % 64) % 64) + "\n"
    return MAGIC + b"\x01\x00" + struct.pack("<H", len(header)) + header.encode()


def encode_f32(rows: int, cols: int, values: array) -> bytes:
    """Serialise `values` (array('f'), row-major, rows*cols long) as a v1.0 .npy file."""
    if values.typecode != "f" or len(values) != rows * cols:
        raise NpyError("values must be array('f') of rows*cols floats")
    data = values
    if sys.byteorder == "big":
        data = array("f", values)
        data.byteswap()
    return header_f32(rows, cols) + data.tobytes()


def shape_and_offset(head: bytes) -> tuple[int, int, str, int]:
    """(rows, cols, dtype, payload offset) of a 2-D .npy file, from its first bytes (256 are
    always enough for the files Tandem writes)."""
    if not head.startswith(MAGIC) or len(head) < 10:
        raise NpyError("not a .npy file")
    major = head[6]
    if major == 1:
        (hlen,) = struct.unpack_from("<H", head, 8)
        start = 10
    elif major in (2, 3):
        (hlen,) = struct.unpack_from("<I", head, 8)
        start = 12
    else:
        raise NpyError(f"unsupported .npy version {major}")
    try:
        header = ast.literal_eval(head[start : start + hlen].decode("latin-1"))
    except (ValueError, SyntaxError) as exc:
        raise NpyError("bad .npy header") from exc
    if not isinstance(header, dict) or header.get("fortran_order"):
        raise NpyError("unsupported .npy layout")
    shape = header.get("shape")
    if not (isinstance(shape, tuple) and len(shape) == 2):
        raise NpyError(f"expected a 2-D array, got shape {shape!r}")
    return int(shape[0]), int(shape[1]), str(header.get("descr")), start + hlen


def encode_rows(rows: Sequence[Sequence[float]], cols: int) -> bytes:
    flat = array("f")
    for row in rows:
        if len(row) != cols:
            raise NpyError("ragged rows")
        flat.extend(row)
    return encode_f32(len(rows), cols, flat)


def decode_f32(data: bytes) -> tuple[int, int, array]:
    """Parse a 2-D little-endian float32 (or float16/float64, converted) .npy file."""
    rows, cols, descr, offset = shape_and_offset(data)
    codes = {"<f4": "f", "<f8": "d", "<f2": "e"}
    if descr not in codes:
        raise NpyError(f"unsupported dtype {descr!r}")
    payload = data[offset:]
    itemsize = struct.calcsize(codes[descr])
    if len(payload) != rows * cols * itemsize:
        raise NpyError("truncated .npy payload")
    if descr == "<f2":
        values = array("f", struct.unpack(f"<{rows * cols}e", payload))
    else:
        raw = array(codes[descr])
        raw.frombytes(payload)
        if sys.byteorder == "big":
            raw.byteswap()
        values = raw if descr == "<f4" else array("f", raw)
    return rows, cols, values
