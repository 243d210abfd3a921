"""What mini-SD learned: held-out scenes, their VAE reconstructions and DDIM samples for the same captions.

    python scripts/sample_mini_sd.py runs/mini-sd/model --out docs/mini-sd-samples.png

Rows: held-out scenes (data seed 7), VAE reconstructions of the posterior mean, DDIM samples (50 steps, guidance 3)
of mini-SD for those scenes' captions. Also prints the held-out reconstruction L1 (on [-1, 1]).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from PIL import Image


def main(argv=None) -> int:
    from primedepth.constants import HELD_OUT_SEED
    from primedepth.miniature.mini_sd import render_dataset, sample_images
    from primedepth.pipelines.pipeline import PrimeDepthPipeline

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="a mini-SD folder (runs/mini-sd/model) or any PrimeDepth-mini checkpoint")
    parser.add_argument("--out", type=Path, default=Path("mini-sd-samples.png"))
    parser.add_argument("--count", type=int, default=8)
    args = parser.parse_args(argv)

    pipe = PrimeDepthPipeline.from_pretrained(args.model, device="cpu")
    images, captions = render_dataset(HELD_OUT_SEED, args.count, (64, 64))
    with torch.no_grad():
        recon = pipe.vae.decode(pipe.vae.encode(images).latent_dist.mean).sample.clamp(-1, 1)
    samples = sample_images(pipe, captions)
    print(f"held-out reconstruction L1: {float((recon - images).abs().mean()):.4f}")
    rows = [torch.cat(list(batch), dim=-1) for batch in (images, recon, samples)]
    grid = ((torch.cat(rows, dim=-2).permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).byte().numpy()
    Image.fromarray(grid).resize((grid.shape[1] * 2, grid.shape[0] * 2), Image.NEAREST).save(args.out)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
