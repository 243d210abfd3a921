"""img2dataset-style input shards and tiny random labellers, made in the tests."""

import io
import json

import numpy as np
import torch
from PIL import Image
from webdataset import TarWriter


def make_input_shards(root, shards=4, per_shard=3, size=(40, 48), seed=0):
    """``root/00000.tar ...`` holding ``<9-digit key>.jpg/.txt/.json`` like img2dataset; returns the keys."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    keys = []
    for s in range(shards):
        with open(root / f"{s:05d}.tar", "wb") as fh, TarWriter(fh) as tar:
            for i in range(per_shard):
                key = f"{s * per_shard + i:09d}"
                y, x = np.mgrid[0 : size[0], 0 : size[1]]
                base = rng.integers(0, 256, 3)
                img = (base + np.stack([x * 3, y * 2, (x + y)], -1) + rng.integers(0, 30, (*size, 3))) % 256
                buf = io.BytesIO()
                Image.fromarray(img.astype(np.uint8)).save(buf, format="JPEG", quality=90)
                tar.write(
                    {
                        "__key__": key,
                        "jpg": buf.getvalue(),
                        "txt": f"alt text {key}".encode(),
                        "json": json.dumps({"key": key, "width": size[1]}).encode(),
                    }
                )
                keys.append(key)
    return keys


class TinyRandomLabellers:
    """Depth, ADE20K-150 segmentation and captions from tiny random conv nets (seeded): stands in for Depth
    Anything, Mask2Former and BLIP-2 with the interface of ``jobs.label_files.Labellers``."""

    WORDS = ["a", "room", "street", "tree", "red", "blue", "car", "house", "sky", "wall"]

    def __init__(self, depth_id, seg_id, caption_id, device, local_files_only):
        self.ids = dict(depth=depth_id, segmentation=seg_id, caption=caption_id)
        g = torch.Generator().manual_seed(0)
        self.depth_net = torch.nn.Conv2d(3, 1, 3, padding=1)
        self.seg_net = torch.nn.Conv2d(3, 150, 1)
        self.caption_net = torch.nn.Linear(3, len(self.WORDS))
        for p in [*self.depth_net.parameters(), *self.seg_net.parameters(), *self.caption_net.parameters()]:
            p.data = torch.randn(p.shape, generator=g)

    @staticmethod
    def _tensor(image):
        return torch.from_numpy(np.asarray(image, np.float32) / 255).permute(2, 0, 1)[None]

    @torch.no_grad()
    def depth(self, image):
        return torch.nn.functional.softplus(self.depth_net(self._tensor(image)))[0, 0].numpy()

    @torch.no_grad()
    def segmentation(self, image):
        return self.seg_net(self._tensor(image))[0].argmax(0).numpy().astype("uint8")

    @torch.no_grad()
    def caption(self, image):
        x = self._tensor(image)
        scores = self.caption_net(x.mean((2, 3)))[0]
        top = scores.argsort(descending=True)[:3].tolist()
        return " ".join(self.WORDS[i] for i in top) + f" {float(x.mean()):.6f} {float(x.std()):.6f}"
