"""Pre- and post-processing around the model: reading images of every kind, choosing the processing size, and
bringing predictions back to the input size.

Sizes. The official code downscales images whose long side exceeds ``max_size`` (torchvision's
``Resize(max_size - 1, max_size=max_size)``) and otherwise feeds the image as it is; its output is then
8*floor(H/8) x 8*floor(W/8) unless it downscaled -- a cropped size for most photos. By default we instead resize to
a multiple of 8 (long side at most ``max_size``, never upscaling beyond rounding) and resize the prediction back to
exactly H x W. ``match_input_size=False`` reproduces the official sizes.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from ..utils.images import uint8_rgb
from ..utils.memory import available_memory

Image.MAX_IMAGE_PIXELS = 400_000_000  # allow large photos; a true decompression bomb still fails clearly
# Peak memory per input pixel of a prediction (decoding, the float32 RGB image, the full-size depth map and the
# npy / png16 / colour writers): 22 B/px measured with npy + png16 on 8000 x 8000 and 16k x 16k JPEGs, plus room for
# the colour map; see docs/reliability.md.
BYTES_PER_PIXEL = 32
FIXED_BYTES = 1 << 30  # the model, torch and everything else that does not grow with the image


class ImageLoadError(ValueError):
    """An input that is not a usable image; the message names the source and the reason."""


@dataclass
class LoadedImage:
    """An RGB image as float32 (3, H, W) in [0, 1] plus where it came from."""

    pixels: torch.Tensor
    source: str

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.pixels.shape[-2:])

    def rgb(self) -> np.ndarray:
        """The image as H x W x 3 uint8 (what the ensemble member, the metric priors and the captioner read)."""
        return uint8_rgb(self.pixels)

    def content_hash(self) -> str:
        data = np.ascontiguousarray(self.rgb().transpose(2, 0, 1)).tobytes()  # channels first, as the cache keys
        return hashlib.sha256(data + str(self.size).encode()).hexdigest()


def check_fits_in_memory(h: int, w: int, source: str) -> None:
    """Refuse, before decoding, an image whose prediction cannot fit in the memory this process may still use."""
    available = available_memory()
    need = BYTES_PER_PIXEL * h * w + FIXED_BYTES
    if available is not None and need > available:
        raise ImageLoadError(
            f"{source}: a {w} x {h} image needs about {need / 2**30:.1f} GiB of memory to predict, "
            f"only {available / 2**30:.1f} GiB are available; downscale it first"
        )


def _uint8_to_float_chw(arr: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 -> float32 (3, H, W) in [0, 1], converted in place (no full-size float temporaries)."""
    out = torch.empty((3, *arr.shape[:2]), dtype=torch.float32)
    with warnings.catch_warnings():  # PIL's buffer is read-only; it is only read here
        warnings.filterwarnings("ignore", "The given NumPy array is not writable")
        out.copy_(torch.from_numpy(arr).permute(2, 0, 1))
    return out.div_(255.0)


def _pil_to_pixels(image: Image.Image) -> torch.Tensor:
    """float32 (3, H, W) in [0, 1] from any PIL mode (16-bit and float modes scaled, alpha dropped like the official
    ``convert("RGB")``, palettes expanded)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(image, dtype=np.float64)
        scale = 65535.0 if arr.max(initial=0) > 255 or image.mode.startswith("I;16") else 255.0
        arr = np.clip(arr / scale, 0, 1).astype(np.float32)
        return torch.from_numpy(arr)[None].repeat(3, 1, 1)
    if image.mode == "F":
        arr = np.asarray(image, dtype=np.float32)
        if not np.isfinite(arr).all():
            raise ValueError("float image contains NaN or infinity")
        lo, hi = float(arr.min()), float(arr.max())
        arr = np.clip(arr, 0, 1) if 0 <= lo and hi <= 1 else (arr - lo) / max(hi - lo, 1e-12)
        return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))[None].repeat(3, 1, 1)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return _uint8_to_float_chw(np.asarray(image if image.mode == "RGB" else image.convert("RGB")))


def _rgb_to_pixels(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).contiguous()


def _array_to_rgb(arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in (1, 3, 4):
        raise ValueError(f"expected an HxW, HxWx3 or HxWx4 array, got shape {arr.shape}")
    arr = arr[..., :3] if arr.shape[-1] != 1 else np.repeat(arr, 3, axis=-1)
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / 65535.0
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise ValueError("array contains NaN or infinity")
        if arr.min() < 0 or arr.max() > 1:
            raise ValueError(f"float images must lie in [0, 1], got [{arr.min():.3g}, {arr.max():.3g}]")
        return arr.astype(np.float32)
    raise ValueError(f"unsupported array dtype {arr.dtype}")


def load_image(image, name: str | None = None) -> LoadedImage:
    """Accepts a path, a PIL image, an HxW[xC] numpy array (uint8, uint16 or float in [0, 1]) or a torch tensor
    (3xHxW, float in [0, 1] or uint8). EXIF orientation is applied to files and PIL images."""
    if isinstance(image, LoadedImage):
        return image
    source = name or (str(image) if isinstance(image, (str, Path)) else type(image).__name__)
    try:
        if isinstance(image, (str, Path)):
            path = Path(image)
            if not path.is_file():
                raise ValueError("file not found")
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(path) as opened:
                    check_fits_in_memory(opened.height, opened.width, source)
                    opened.load()
                    ImageOps.exif_transpose(opened, in_place=True)  # in place: no full-size copy
                    pixels = _pil_to_pixels(opened)
        elif isinstance(image, Image.Image):
            image.load()
            pixels = _pil_to_pixels(ImageOps.exif_transpose(image))
        elif isinstance(image, np.ndarray):
            pixels = _rgb_to_pixels(_array_to_rgb(image))
        elif isinstance(image, torch.Tensor):
            t = image.detach().cpu()
            if t.ndim != 3 or t.shape[0] not in (1, 3, 4):
                raise ValueError(f"expected a CxHxW tensor, got shape {tuple(t.shape)}")
            pixels = _rgb_to_pixels(_array_to_rgb(t.permute(1, 2, 0).numpy()))
        else:
            raise ValueError(f"unsupported input type {type(image).__name__}")
    except ImageLoadError:
        raise
    except Image.UnidentifiedImageError:
        raise ImageLoadError(f"{source}: not an image file (unrecognised format)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageLoadError(f"{source}: image too large to decode safely ({err})") from None
    except (OSError, ValueError, SyntaxError) as err:
        raise ImageLoadError(f"{source}: {err}") from None
    if pixels.shape[1] < 1 or pixels.shape[2] < 1:
        raise ImageLoadError(f"{source}: empty image")
    return LoadedImage(pixels, source)


def max_size_setting(max_size: int | None) -> int | str | None:
    """The pipeline's ``max_size`` for the processing size a user gave (``primedepth predict --max-size``, the
    app's slider): none given -> the model's own (``"auto"``), 0 -> the input's size (``None``), n -> long side n."""
    if max_size is not None and max_size < 0:
        raise ValueError(f"processing size must be 0 (the input's size) or positive, got {max_size}")
    return "auto" if max_size is None else (max_size or None)


def official_processing_size(h: int, w: int, max_size: int | None) -> tuple[int, int]:
    """torchvision ``Resize(max_size - 1, max_size=max_size)`` (or ``Resize(max_size)`` when square) as used by
    the authors, applied only when the long side exceeds ``max_size``."""
    if max_size is None or max(h, w) <= max_size:
        return h, w
    if h == w:
        return max_size, max_size
    short, long = min(h, w), max(h, w)
    new_short, new_long = max_size - 1, int((max_size - 1) * long / short)
    if new_long > max_size:
        new_short, new_long = int(max_size * new_short / new_long), max_size
    return (new_short, new_long) if h <= w else (new_long, new_short)


MIN_PROCESSING_SIDE = 64  # one latent pixel at the UNet's deepest level; smaller inputs are enlarged to it


def aligned_processing_size(h: int, w: int, max_size: int | None, multiple: int = 8) -> tuple[int, int]:
    """Long side <= ``max_size`` (never upscaled), sides rounded to the nearest multiple of 8, aspect ratio kept.

    The short side is at least 64: when ``max_size`` (or a tiny input) would make it shorter, the image is scaled
    so that the short side is 64 and the long side follows the aspect ratio, up to twice ``max_size`` (or the input's
    long side); only inputs more elongated than that are stretched across their short side.
    """
    scale = min(1.0, max_size / max(h, w)) if max_size else 1.0
    scale = max(scale, MIN_PROCESSING_SIDE / min(h, w))
    long_limit = 2 * max(max_size or max(h, w), MIN_PROCESSING_SIDE) // multiple * multiple
    return tuple(min(long_limit, max(MIN_PROCESSING_SIDE, int(round(s * scale / multiple)) * multiple)) for s in (h, w))


def resize(pixels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear, antialiased when shrinking; (..., H, W) tensors of any leading shape."""
    if tuple(pixels.shape[-2:]) == tuple(size):
        return pixels
    lead = pixels.shape[:-2]
    flat = pixels.reshape(-1, 1, *pixels.shape[-2:]).float()
    out = F.interpolate(flat, size=size, mode="bilinear", align_corners=False, antialias=True)
    return out.reshape(*lead, *size).to(pixels.dtype)


class PrimeDepthImageProcessor:
    """Chooses processing sizes and maps predictions back; one place for the size policy of the pipeline."""

    def __init__(self, max_size: int | None = 1024, match_input_size: bool = True):
        self.max_size = max_size
        self.match_input_size = match_input_size

    def processing_size(self, h: int, w: int) -> tuple[int, int]:
        if self.match_input_size:
            return aligned_processing_size(h, w, self.max_size)
        ph, pw = official_processing_size(h, w, self.max_size)
        if ph < 8 or pw < 8:
            raise ValueError(
                f"{h}x{w} is too small for the official size policy (needs >= 8 px per side); use match_input_size=True"
            )
        return ph, pw

    def preprocess(self, image: LoadedImage) -> torch.Tensor:
        """(3, h, w) in [-1, 1] at the processing size."""
        return resize(image.pixels, self.processing_size(*image.size)) * 2.0 - 1.0

    def output_size(self, input_size: tuple[int, int]) -> tuple[int, int]:
        if self.match_input_size:
            return input_size
        h, w = input_size
        ph, pw = self.processing_size(h, w)
        return (h, w) if (ph, pw) != (h, w) else (8 * (h // 8), 8 * (w // 8))

    def postprocess_depth(self, depth: torch.Tensor, input_size: tuple[int, int]) -> np.ndarray:
        """(h', w') prediction -> float32 numpy at the output size."""
        return resize(depth.float(), self.output_size(input_size)).cpu().numpy()  # float32, no extra copy

    def postprocess_segmentation(self, logits: torch.Tensor, input_size: tuple[int, int]) -> np.ndarray:
        """(classes, h', w') logits -> uint8 class map (nearest) at the output size."""
        classes = logits.argmax(dim=0, keepdim=True)[None].float()
        out = F.interpolate(classes, size=self.output_size(input_size), mode="nearest")
        return out[0, 0].to(torch.uint8).cpu().numpy()
