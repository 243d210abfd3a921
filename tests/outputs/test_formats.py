"""Float map files read back bit-exact; the grey PNG is white = near."""

import io

import numpy as np
import tifffile
from PIL import Image

from primedepth.outputs.formats import grey_png_bytes, pfm_bytes, read_exr, read_pfm, read_tiff, tiff_bytes, write_exr
from primedepth.utils.atomic import atomic_write


def test_tiff_exr_pfm_round_trip_exactly(tmp_path):
    values = (np.random.default_rng(0).normal(size=(13, 21)) * 3).astype(np.float32)
    values[0, 0] = -5.25
    atomic_write(tmp_path / "a.tiff", tiff_bytes(values, "depth"))
    write_exr(tmp_path / "a.exr", values)
    atomic_write(tmp_path / "a.pfm", pfm_bytes(values))
    for read in (read_tiff(tmp_path / "a.tiff"), read_exr(tmp_path / "a.exr"), read_pfm(tmp_path / "a.pfm")):
        assert read.dtype == np.float32
        np.testing.assert_array_equal(read, values)
    assert "metres" in tifffile.TiffFile(tmp_path / "a.tiff").pages[0].description
    # PFM stores rows bottom to top: the first stored row is the image's last
    raw = (tmp_path / "a.pfm").read_bytes()
    np.testing.assert_array_equal(np.frombuffer(raw[-21 * 13 * 4 :][: 21 * 4], "<f4"), values[-1])


def test_grey_png_is_white_near():
    inverse_depth = np.array([[0.0, 1.0, 2.0]], np.float32)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(grey_png_bytes(inverse_depth)))), [[0, 128, 255]])
