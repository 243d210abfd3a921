"""The output formats: the one table of format names and file suffixes, and the float and grey map files.

``FORMATS`` is what every writer, the CLI's ``--format`` check, the app's downloads and the manifest of our outputs
read: a format's name and the suffix its file gets after the input's stem. The name tuples below it pick the
formats of one kind from it.

Float files hold either the affine-invariant inverse depth or metric depth (``--output-kind``); TIFF and EXR record
which in their metadata (the TIFF ImageDescription, the EXR attribute ``primedepth_values``). PFM is the
three-line-header format of the stereo benchmarks: greyscale ``Pf``, little-endian (negative scale), rows stored
bottom to top. This module imports numpy and Pillow only (the command line reads the table before anything heavy).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from ..utils.atomic import atomic_path

# format name -> file suffix after the input's stem
FORMATS = {
    "npy": ".npy",  # the raw map, float32
    "png16": "_16bit.png",
    "color": "_color.png",
    "seg": "_seg.png",
    "grey": "_grey.png",
    "side": "_side.png",
    "tiff": ".tiff",
    "exr": ".exr",
    "pfm": ".pfm",
    "ply": ".ply",
    "glb": ".glb",
    "depth": "_depth.npy",
    # written with a metric prior (--metric): the fusion's confidence (grey PNG, white = the members agree, and
    # float32), its residual against the prior, and the run's metric metadata (prior, fit, camera, licences)
    "confidence": "_confidence.png",
    "confidence-npy": "_confidence.npy",
    "residual": "_residual.npy",
    "metric-json": "_metric.json",
}
MAP_FORMATS = ("npy", "png16", "color")  # the maps of the prediction itself (and of each ensemble member)
FLOAT_FORMATS = ("tiff", "exr", "pfm")  # float32 files of inverse depth or metric depth
METRIC_FORMATS = ("confidence", "confidence-npy", "residual", "metric-json")
FRAME_FORMATS = ("png16", "exr", "tiff")  # a video's per-frame files
NEEDS_DEPTH = ("ply", "glb", "depth")
OUTPUT_KINDS = ("inverse-depth", "depth")
KIND_DESCRIPTIONS = {
    "inverse-depth": "affine-invariant inverse depth (larger = nearer; unknown scale and shift)",
    "depth": "depth along the optical axis in metres",
}


def tiff_bytes(values: np.ndarray, kind: str = "inverse-depth") -> bytes:
    import tifffile

    buf = io.BytesIO()
    tifffile.imwrite(
        buf,
        np.ascontiguousarray(values, dtype=np.float32),
        compression="zlib",
        description=KIND_DESCRIPTIONS[kind],
        metadata=None,
    )
    return buf.getvalue()


def read_tiff(path: str | Path) -> np.ndarray:
    import tifffile

    return tifffile.imread(path)


def openexr():
    """The OpenEXR module, or ImportError saying how to install it (it is an optional extra)."""
    try:
        import OpenEXR
    except ImportError:
        raise ImportError("EXR output needs OpenEXR: pip install 'primedepth[outputs]'") from None
    return OpenEXR


def write_exr(path: str | Path, values: np.ndarray, kind: str = "inverse-depth") -> None:
    """One float32 channel ``Y``, ZIP-compressed, written atomically."""
    OpenEXR = openexr()

    header = {
        "compression": OpenEXR.ZIP_COMPRESSION,
        "type": OpenEXR.scanlineimage,
        "primedepth_values": KIND_DESCRIPTIONS[kind],
    }
    with atomic_path(path) as tmp:
        with OpenEXR.File(header, {"Y": np.ascontiguousarray(values, dtype=np.float32)}) as exr:
            exr.write(str(tmp))


def read_exr(path: str | Path) -> np.ndarray:
    OpenEXR = openexr()

    with OpenEXR.File(str(path)) as exr:
        return np.array(exr.channels()["Y"].pixels, dtype=np.float32)


def pfm_bytes(values: np.ndarray) -> bytes:
    h, w = values.shape
    header = f"Pf\n{w} {h}\n-1.0\n".encode("ascii")
    return header + np.ascontiguousarray(values[::-1], dtype="<f4").tobytes()


def read_pfm(path: str | Path) -> np.ndarray:
    """A greyscale or colour PFM as float32 (H x W or H x W x 3), top row first."""
    data = Path(path).read_bytes()
    fields, position = [], 0
    while len(fields) < 4:  # magic, width, height, scale, separated by whitespace
        while data[position : position + 1].isspace():
            position += 1
        end = position
        while not data[end : end + 1].isspace():
            end += 1
        fields.append(data[position:end].decode("ascii"))
        position = end
    position += 1
    magic, w, h, scale = fields[0], int(fields[1]), int(fields[2]), float(fields[3])
    if magic not in ("Pf", "PF"):
        raise ValueError(f"{path}: not a PFM file")
    channels = 1 if magic == "Pf" else 3
    dtype = "<f4" if scale < 0 else ">f4"
    values = np.frombuffer(data, dtype=dtype, count=w * h * channels, offset=position)
    shape = (h, w) if channels == 1 else (h, w, 3)
    return values.reshape(shape)[::-1].astype(np.float32)


def grey_png_bytes(inverse_depth: np.ndarray) -> bytes:
    """8-bit grey PNG: 255 = nearest, 0 = farthest (min-max over the map)."""
    from .colour import grey

    buf = io.BytesIO()
    Image.fromarray(grey(inverse_depth)).save(buf, format="PNG")
    return buf.getvalue()
