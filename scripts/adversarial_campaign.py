"""Adversarial campaign against the CLI: SIGKILLs mid-run, hostile inputs, broken model folders and checkpoints.

    python scripts/adversarial_campaign.py WORKDIR [--kills-only | --inputs-only | --models-only | --disks-only]

Kills: ``predict``, ``eval``, ``train`` and ``convert`` are SIGKILLed at random moments, then rerun; every output that
exists must be complete (npy loads, PNGs decode, checkpoints load) and no temporary file of ours may remain.
Inputs: one folder of broken, odd and hostile files; each must be written or reported by name, never dropped.
Models: copies of a valid model folder and of the reference checkpoint, each broken one way; each must end in one
``error:`` line, exit 2 and no traceback; parts stored as ``.bin`` (incomplete, or a pickle that runs code) too.
Disks (as root: a 1 MiB tmpfs, and a read-only one): ``eval``, ``train``, ``convert`` and ``video`` writing there
must end in one ``error:`` line naming the output, exit 3, no traceback. Prints one line per case and the totals
(numbers quoted in the docs).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO.parent / "shared" / "reference"
CLI = [sys.executable, "-m", "primedepth.cli"]


def run(args, **kw):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, **kw)


def our_temps(folder: Path) -> list[Path]:
    from primedepth.utils.atomic import is_our_temp

    return [p for p in folder.rglob("*") if is_our_temp(p) or p.name.endswith((".partial", ".tmp"))]


def complete(folder: Path) -> bool:
    for f in folder.rglob("*"):
        if f.suffix == ".npy":
            np.load(f)
        elif f.suffix == ".png":
            with Image.open(f) as im:
                im.load()
    return True


def kill_after(args, delay: float) -> None:
    proc = subprocess.Popen([*CLI, *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


# ------------------------------------------------------------------------------------------------------ kills
def kills(work: Path, rng: random.Random) -> tuple[int, int]:
    survived = total = 0
    photos = work / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    for i in range(40):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (96 + i, 128, 3), dtype=np.uint8)).save(
            photos / f"p{i:02d}.png"
        )
    out = work / "kill-predict"
    for k in range(8):
        kill_after(
            ["predict", photos, "-o", out, "--model", "tiny-random", "--format", "npy,png16,color"], rng.uniform(8, 16)
        )
        ok = complete(out)
        rerun = run(["predict", photos, "-o", out, "--model", "tiny-random", "--format", "npy,png16,color"])
        ok = ok and rerun.returncode == 0 and not our_temps(out) and len(list(out.glob("*.npy"))) == 40
        print(f"kill predict {k}: {'ok' if ok else 'LOST / TEMP LEFT'} ({rerun.stderr.strip().splitlines()[-1]})")
        survived += ok
        total += 1
        shutil.rmtree(out) if k % 2 else None  # alternate fresh and partly finished folders

    config = work / "train.json"
    config.write_text(
        json.dumps(
            {
                "output_dir": str(work / "kill-train"),
                "data": {"resolution": [32, 32], "train": [{"kind": "scenes", "length": 8}]},
                "train": {"max_steps": 6, "batch_size": 2},
                "checkpoint": {"every": 1, "keep_last": 2},
                "logging": {"every": 1, "tensorboard": False},
            }
        )
    )
    for k in range(4):
        kill_after(["train", config], rng.uniform(12, 25))
        rerun = run(["train", config])
        rows = [json.loads(x) for x in (work / "kill-train" / "logs" / "metrics.jsonl").read_text().splitlines()]
        steps = [r["step"] for r in rows if r["split"] == "train"]
        ok = rerun.returncode == 0 and steps == sorted(set(steps)) and not our_temps(work / "kill-train")
        print(f"kill train {k}: {'ok' if ok else 'BROKEN'} (train steps logged {steps})")
        survived += ok
        total += 1
        shutil.rmtree(work / "kill-train")

    if (REFERENCE / "official_tiny.ckpt").is_file():
        for k in range(3):
            target = work / "kill-convert" / "model"
            args = [
                "convert",
                REFERENCE / "official_tiny.ckpt",
                target,
                "--config",
                REFERENCE / "official_tiny_config.json",
                "--local-files-only",
            ]
            kill_after(args, rng.uniform(8, 14))
            leftovers = [p for p in target.parent.glob(".*")] if target.parent.is_dir() else []
            rerun = run(args)
            ok = rerun.returncode == 0 and (target / "model_index.json").is_file()
            print(f"kill convert {k}: {'ok' if ok else 'BROKEN'} (hidden leftovers after the kill: {len(leftovers)})")
            survived += ok
            total += 1
    return survived, total


# ----------------------------------------------------------------------------------------------------- inputs
def bad_inputs(work: Path) -> tuple[int, int]:
    src = work / "bad-inputs"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    good = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    Image.fromarray(good).save(src / "good.png")
    data = (src / "good.png").read_bytes()
    cases = {
        "truncated.png": lambda p: p.write_bytes(data[: len(data) // 2]),
        "text.jpg": lambda p: p.write_text("not an image"),
        "empty.png": lambda p: p.write_bytes(b""),
        "random.jpg": lambda p: p.write_bytes(os.urandom(4096)),
        "page.png": lambda p: p.write_text("<html><body>404</body></html>"),
        "dangling.png": lambda p: os.symlink(src / "nowhere.png", p),
        "loop.jpg": lambda p: os.symlink(p, p),
        "one-pixel.png": lambda p: Image.new("RGB", (1, 1), (9, 9, 9)).save(p),
        "strip-wide.png": lambda p: Image.new("RGB", (5000, 1), (9, 90, 9)).save(p),
        "strip-tall.png": lambda p: Image.new("RGB", (1, 5000), (9, 90, 9)).save(p),
        "grey16.png": lambda p: Image.fromarray((np.arange(4800).reshape(60, 80) * 13).astype(np.uint16)).save(p),
        "nan.tiff": lambda p: Image.fromarray(np.full((40, 40), np.nan, np.float32)).save(p),
        "float.tiff": lambda p: Image.fromarray(np.linspace(-5, 9, 1600, dtype=np.float32).reshape(40, 40)).save(p),
        "cmyk.jpg": lambda p: Image.fromarray(good).convert("CMYK").save(p),
        "palette-alpha.png": lambda p: Image.fromarray(good).convert("P").save(p, transparency=0),
        "grey-alpha.png": lambda p: Image.fromarray(good).convert("LA").save(p),
        "animated.gif": lambda p: Image.fromarray(good).save(
            p, save_all=True, append_images=[Image.fromarray(good[::-1])]
        ),
        "image.webp": lambda p: Image.fromarray(good).save(p),
        "image.ppm": lambda p: Image.fromarray(good).save(p),
        "image.bmp": lambda p: Image.fromarray(good).save(p),
        "rotated.jpg": lambda p: _rotated_jpeg(good, p),
        "bomb.png": lambda p: _png_header_only(p, 40000, 40000),
        "too-big-for-memory.png": lambda p: _png_header_only(p, 19000, 19000),
        "name with spaces é.png": lambda p: Image.fromarray(good).save(p),
        "folder.png": lambda p: p.mkdir(),
        "fifo.png": lambda p: os.mkfifo(p),
        "good.jpg": lambda p: Image.fromarray(good).save(p),  # same output name as good.png
        "photo.heic": lambda p: p.write_bytes(b"\0\0\0\x18ftypheic" + os.urandom(64)),
        "photo2.HEIC": lambda p: p.write_bytes(b"\0\0\0\x18ftypheic" + os.urandom(64)),
    }
    for name, make in cases.items():
        make(src / name)
    result = run(["predict", src, "-o", work / "bad-out", "--model", "tiny-random", "--format", "npy"], timeout=900)
    text = result.stdout + result.stderr
    handled = 0
    for name in cases:
        stem = Path(name).with_suffix("").name
        written = (work / "bad-out" / f"{stem}.npy").is_file()
        reported = name in text
        handled += written or reported or name == "folder.png"
        state = (
            "written"
            if written
            else "reported"
            if reported
            else "a folder: searched"
            if name == "folder.png"
            else "DROPPED"
        )
        print(f"input {name}: {state}")
    print(f"exit code {result.returncode}, traceback: {'Traceback' in text}")
    print("\n".join(line for line in result.stderr.splitlines() if line.startswith(("done", "  failed"))))
    return handled, len(cases)


def _rotated_jpeg(pixels, path):
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(pixels).save(path, exif=exif)


def _png_header_only(path, w, h):
    import struct
    import zlib

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\0" * 100))
        + chunk(b"IEND", b"")
    )


# ----------------------------------------------------------------------------------------------------- models
def broken_models(work: Path) -> tuple[int, int]:
    from primedepth import PrimeDepthPipeline

    valid = work / "valid-model"
    if not valid.is_dir():
        PrimeDepthPipeline.from_pretrained("tiny-random", device="cpu").save_pretrained(valid)
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(work / "m.png")

    def index(**kw):
        def edit(d):
            m = json.loads((d / "model_index.json").read_text())
            m.update(kw)
            (d / "model_index.json").write_text(json.dumps(m))

        return edit

    def tensors(part, file="diffusion_pytorch_model.safetensors", drop=False):
        def edit(d):
            sd = load_file(str(d / part / file))
            key = sorted(sd)[3]
            if drop:
                del sd[key]
            else:
                sd[key] = torch.zeros(5)
            save_file(sd, str(d / part / file))

        return edit

    def other_width(d):
        from transformers import CLIPTextConfig, CLIPTextModel

        c = CLIPTextConfig.from_pretrained(d / "text_encoder")
        c.hidden_size, c.intermediate_size = 48, 96
        shutil.rmtree(d / "text_encoder")
        CLIPTextModel(c).save_pretrained(d / "text_encoder")

    def as_bin(part, drop=False, hostile=False):
        def edit(d):
            st = "model.safetensors" if part == "text_encoder" else "diffusion_pytorch_model.safetensors"
            name = "pytorch_model.bin" if part == "text_encoder" else "diffusion_pytorch_model.bin"
            sd = load_file(str(d / part / st))
            (d / part / st).unlink()
            if drop:
                del sd[sorted(sd)[3]]
            if hostile:
                sd = {"x": RunsCode(work / "PWNED")}
            torch.save(sd, d / part / name)

        return edit

    cases = {
        "text .bin missing tensor": as_bin("text_encoder", drop=True),
        "unet .bin missing tensor": as_bin("unet", drop=True),
        "labeller .bin missing tensor": as_bin("labeller", drop=True),
        "text .bin hostile pickle": as_bin("text_encoder", hostile=True),
        "vae .bin hostile pickle": as_bin("vae", hostile=True),
        "model_index not JSON": lambda d: (d / "model_index.json").write_text("{x"),
        "model_index a list": lambda d: (d / "model_index.json").write_text("[1]"),
        "unet config not JSON": lambda d: (d / "unet" / "config.json").write_text("{"),
        "labeller config not JSON": lambda d: (d / "labeller" / "config.json").write_text("{"),
        "text config not JSON": lambda d: (d / "text_encoder" / "config.json").write_text("{"),
        "labeller wrong shape": tensors("labeller"),
        "unet wrong shape": tensors("unet"),
        "vae wrong shape": tensors("vae"),
        "text wrong shape": tensors("text_encoder", "model.safetensors"),
        "unet missing tensor": tensors("unet", drop=True),
        "vae missing tensor": tensors("vae", drop=True),
        "labeller missing tensor": tensors("labeller", drop=True),
        "text missing tensor": tensors("text_encoder", "model.safetensors", drop=True),
        "timestep a string": index(timestep="1"),
        "timestep a float": index(timestep=1.5),
        "timestep outside schedule": index(timestep=5000),
        "beta a string": index(beta_start="x"),
        "absolute text encoder": index(text_encoder=str(valid / "text_encoder")),
        "escaping text encoder": index(text_encoder="../valid-model/text_encoder"),
        "absolute tokenizer": index(tokenizer=str(valid / "tokenizer")),
        "other model's text encoder": other_width,
        "no unet": lambda d: shutil.rmtree(d / "unet"),
        "empty weights": lambda d: (d / "vae" / "diffusion_pytorch_model.safetensors").write_bytes(b""),
        "garbage weights": lambda d: (d / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(
            b"\x10" + b"\0" * 7 + b"junk"
        ),
        "unknown labeller class": lambda d: (d / "labeller" / "config.json").write_text(
            json.dumps({**json.loads((valid / "labeller" / "config.json").read_text()), "_class_name": "Evil"})
        ),
    }
    handled = 0
    for name, edit in cases.items():
        d = work / "broken" / name.replace(" ", "_").replace("'", "")
        shutil.rmtree(d, ignore_errors=True)
        shutil.copytree(valid, d)
        edit(d)
        r = run(["predict", work / "m.png", "-o", work / "broken-out" / d.name, "--model", d])
        errors = [x for x in r.stderr.splitlines() if x.startswith("error:")]
        ok = r.returncode == 2 and errors and "Traceback" not in r.stderr and not (work / "PWNED").exists()
        handled += bool(ok)
        detail = errors[0][:160] if errors else r.stderr[-200:]
        print(f"model {name}: {'ok' if ok else 'BAD'} exit {r.returncode}: {detail}")
    if (REFERENCE / "official_tiny.ckpt").is_file():
        ckpt = torch.load(REFERENCE / "official_tiny.ckpt", weights_only=True)
        for name, value in (("non-tensor value", [1, 2]), ("wrong-shaped tensor", torch.zeros(3, 3))):
            bad = {**ckpt, "state_dict": {**ckpt["state_dict"], "labeller.convs_merge.5.weight": value}}
            torch.save(bad, work / "bad.ckpt")
            r = run(
                [
                    "convert",
                    work / "bad.ckpt",
                    work / "bad-convert",
                    "--config",
                    REFERENCE / "official_tiny_config.json",
                    "--local-files-only",
                ]
            )
            ok = r.returncode == 2 and r.stderr.startswith("error:") and "Traceback" not in r.stderr
            handled += bool(ok)
            cases[f"convert {name}"] = None
            print(f"checkpoint {name}: {'ok' if ok else 'BAD'} exit {r.returncode}: {r.stderr.strip()[:200]}")
    return handled, len(cases)


class RunsCode:
    """Unpickling this leaves a marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


# ------------------------------------------------------------------------------------------------------ disks
def disk_errors(work: Path) -> tuple[int, int]:
    """Commands writing to a full (1 MiB) and a read-only tmpfs: one error: line naming the output, exit 3."""
    if os.geteuid() != 0:
        print("disks: skipped (mounting a tmpfs needs root)")
        return 0, 0
    from primedepth.jobs.video import write_video

    sys.path.insert(0, str(REPO / "tests"))
    from helpers import benchmark_files

    data = work / "scannet"
    if not data.is_dir():
        benchmark_files.make_scannet(data, n=4, h=480, w=640)
    clip = work / "clip.mp4"
    write_video(clip, (np.full((96, 128, 3), i * 8, np.uint8) for i in range(24)), Fraction(12))
    commands = {
        "eval": lambda out: ["eval", "--dataset", "scannet", "--data-root", data, "--output", out, "--allow-partial"],
        "train": lambda out: ["train", "tiny_cpu", "--max-steps", "2", "-o", out],
        "convert": lambda out: [
            "convert",
            REFERENCE / "official_tiny.ckpt",
            out,
            "--config",
            REFERENCE / "official_tiny_config.json",
            "--local-files-only",
        ],
        "video": lambda out: ["video", clip, "-o", out, "--model", "tiny-random"],
    }
    handled = total = 0
    for disk, options in (("full", "size=1m"), ("read-only", "ro,size=1m")):
        mount = work / f"{disk}-disk"
        mount.mkdir(exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)], check=True)
        try:
            for name, args in commands.items():
                out = mount / name
                r = run(args(out))
                errors = [x for x in r.stderr.splitlines() if x.startswith("error:")]
                ok = r.returncode == 3 and len(errors) == 1 and str(out) in errors[0] and "Traceback" not in r.stderr
                handled, total = handled + ok, total + 1
                detail = (errors or [r.stderr[-200:]])[0]
                print(f"{disk} disk {name}: {'ok' if ok else 'BAD'} exit {r.returncode}: {detail}")
        finally:
            subprocess.run(["umount", str(mount)], check=False)
    return handled, total


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kills-only", action="store_true")
    parser.add_argument("--inputs-only", action="store_true")
    parser.add_argument("--models-only", action="store_true")
    parser.add_argument("--disks-only", action="store_true")
    a = parser.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    everything = not (a.kills_only or a.inputs_only or a.models_only or a.disks_only)
    totals = {}
    if everything or a.inputs_only:
        totals["bad inputs handled"] = bad_inputs(a.work)
    if everything or a.models_only:
        totals["broken models / checkpoints handled"] = broken_models(a.work)
    if everything or a.disks_only:
        totals["full / read-only disk errors reported"] = disk_errors(a.work)
    if everything or a.kills_only:
        totals["kills survived (nothing lost, no temp left)"] = kills(a.work, random.Random(a.seed))
    for what, (good, total) in totals.items():
        print(f"{what}: {good}/{total}")


if __name__ == "__main__":
    main()
