"""Package a trained PrimeDepth-mini checkpoint as the embedded model.

    python scripts/package_mini.py runs/mini-primedepth/checkpoints/latest

Writes ``src/primedepth/weights/primedepth-mini`` (our pipeline layout) with every weight stored as fp16
safetensors (the pipeline computes in fp32; ``from_pretrained`` upcasts), the settings the model needs outside the
trainer (empty caption, processing at its 64 px training resolution) and a provenance file; the build machine's paths
(``_name_or_path``) are dropped from the configs. The folder is replaced atomically.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import torch

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "primedepth" / "weights" / "primedepth-mini"


def resolve_checkpoint(path: Path) -> Path:
    if path.name == "latest" and path.is_file():
        return path.parent / path.read_text().strip()
    return path


def package(checkpoint: Path, out: Path, provenance: dict) -> int:
    from primedepth.pipelines.pipeline import PrimeDepthPipeline

    pipe = PrimeDepthPipeline.from_pretrained(str(checkpoint), device="cpu")
    pipe.settings.update(default_caption="none", max_size=64)
    pipe.to(dtype=torch.float16)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".primedepth-mini-", dir=out.parent))
    try:
        pipe.save_pretrained(tmp)
        for config in tmp.glob("*/config.json"):
            fields = json.loads(config.read_text())
            fields.pop("_name_or_path", None)
            config.write_text(json.dumps(fields, indent=2, sort_keys=True) + "\n")
        (tmp / "PROVENANCE.json").write_text(json.dumps(provenance, indent=2) + "\n")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return sum(f.stat().st_size for f in out.rglob("*") if f.is_file())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--recipe", default="configs/mini-sd.toml, configs/mini-primedepth.json")
    args = parser.parse_args(argv)
    ckpt = resolve_checkpoint(args.checkpoint).resolve()
    if not (ckpt / "labeller" / "config.json").is_file():
        print(f"error: {ckpt}: not a training checkpoint (no labeller/config.json)", file=sys.stderr)
        return 2
    size = package(
        ckpt,
        args.out,
        {
            "checkpoint": str(ckpt.relative_to(Path.cwd()) if ckpt.is_relative_to(Path.cwd()) else ckpt),
            "recipe": args.recipe,
            "storage": "fp16",
        },
    )
    print(f"{args.out}: {size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
