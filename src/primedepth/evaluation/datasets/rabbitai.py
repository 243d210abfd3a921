"""rabbitai: the dense light-field depth benchmark of "Mind the gap" (Schilling et al., CVPRW 2020) as released for
the Robust Vision Challenge 2020 depth task (``rvc_2020/data.zip``). The paper evaluates on its 60 images.

The RVC devkit describes the layout as KITTI's: ``<split>/<scene>/image_0X/<name>.png`` with the ground truth at
``<split>/<scene>/proj_depth/groundtruth/image_0X/<name>.png`` (uint16, metres = value / 256, 0 = invalid) and the
intrinsics in ``<scene>/camdata_left/``. The archive itself could not be inspected, so samples are discovered by
pairing: every image in an ``image_*`` folder (at any depth below the root) whose ground-truth PNG of the same stem
exists in the ``proj_depth/groundtruth`` folder beside it. When no pair is found the error says what was expected and
what was found instead."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from ...constants import IMAGE_EXTENSIONS
from .base import DatasetError, DepthDataset, read_png_depth

GT_DIR = ("proj_depth", "groundtruth")
EXPECTED_LAYOUT = (
    "<split>/<scene>/image_0X/<name>.png with <split>/<scene>/proj_depth/groundtruth/image_0X/<name>.png "
    "(uint16 PNG, metres x 256, 0 = invalid), as the RVC 2020 depth devkit describes the rabbitAI data"
)


def gt_path(rgb_rel: str) -> str:
    """The ground-truth PNG of an image:
    ``<scene>/image_0X/<name>.*`` -> ``<scene>/proj_depth/groundtruth/image_0X/<name>.png``."""
    rgb = PurePosixPath(rgb_rel)
    return str(rgb.parent.parent.joinpath(*GT_DIR, rgb.parent.name, rgb.stem + ".png"))


def is_camera_image(rel: PurePosixPath) -> bool:
    in_camera_folder = rel.parent.name.startswith("image_") and "proj_depth" not in rel.parts
    return in_camera_folder and rel.suffix.lower() in IMAGE_EXTENSIONS


def pair_images(root: Path) -> tuple[list[tuple[str, str]], list[str], list[str]]:
    """``(pairs, images without ground truth, ground-truth files without image)``, as paths relative to ``root``."""
    files = sorted(PurePosixPath(p.relative_to(root).as_posix()) for p in root.rglob("*") if p.is_file())
    images = [str(f) for f in files if is_camera_image(f)]
    gts = {str(f) for f in files if f.suffix.lower() == ".png" and "proj_depth" in f.parts}
    pairs = [(img, gt_path(img)) for img in images if gt_path(img) in gts]
    paired = {gt for _, gt in pairs}
    return pairs, [img for img in images if gt_path(img) not in gts], sorted(gts - paired)


class RabbitAIDataset(DepthDataset):
    """Images without ground truth (a test split, say) are not samples; they are listed in ``images_without_gt``."""

    config_name = "rabbitai"

    def discover(self):
        pairs, lonely_images, lonely_gts = pair_images(self.root)
        self.images_without_gt = lonely_images
        if not pairs:
            found = [
                f"{len(lonely_images)} image(s) in image_* folders"
                + (f" (e.g. {lonely_images[0]})" if lonely_images else ""),
                f"{len(lonely_gts)} PNG(s) under proj_depth/" + (f" (e.g. {lonely_gts[0]})" if lonely_gts else ""),
            ]
            raise DatasetError(
                f"rabbitai: no image/ground-truth pair under {self.root}. Expected {EXPECTED_LAYOUT}; "
                f"found {' and '.join(found)}, none with a matching name"
            )
        return pairs

    def read_depth(self, entry, rgb_shape):
        depth = read_png_depth(self.root / entry[1], 256.0)
        return depth, depth > 0
