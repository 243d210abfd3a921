"""``primedepth train``: the two-stage PrimeDepth training loop on accelerate.

Frozen: VAE encoder, UNet, text tower (optionally half precision). Trained: the labeller (fusion convs, refiner,
heads) or, for ``BlockPreIm``, its single-block variant. One step = ``grad_accum`` micro-batches per process,
AdamW, warm-up + schedule, optional EMA. The data order and every noise draw are functions of (seed, sample number),
and checkpoints hold weights, optimizer, schedule, scaler, EMA and step, so a resumed run continues bit-for-bit.

Output folder::

    frozen/                      the frozen parts in pipeline layout (written once, unless frozen_from is a folder)
    checkpoints/step-000500/     model_index.json, unet/ vae/ text_encoder/ tokenizer/ (links to the frozen parts),
                                 labeller/ (EMA weights when EMA is on): loads with PrimeDepthPipeline.from_pretrained
                                 training/ state.json, optimizer.pt, labeller.safetensors (raw, with EMA),
                                 ema.safetensors
    checkpoints/latest           name of the newest complete checkpoint
    logs/metrics.jsonl           every logged scalar (always); logs/tensorboard/ when tensorboard is importable
    samples/step-000500.png      validation images: RGB | target | prediction (inverse depth)
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..constants import SCENE_SEED_STRIDE
from ..data.mixing import StepSampler, build_mixture, collate
from ..data.streaming import StreamingShards, is_streaming
from ..models.frozen.latent_noising import posterior_moments
from ..models.frozen.single_step import draw_noise
from ..models.preimage import BlockMaps, Preimage
from ..utils.atomic import atomic_dir, atomic_path, atomic_write_text
from ..utils.torch_files import load_torch_file
from .ablations import Ablation, resolve_ablation
from .config import load_config
from .ema import EMA
from .losses import combine_losses, dice_loss, focal_loss, latent_depth_loss, ssi_loss

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
FROZEN_PARTS = ("unet", "vae", "text_encoder", "tokenizer")


# ------------------------------------------------------------------------------------------------------ helpers
def build_labeller(kwargs: dict, ablation: Ablation, seed: int):
    from ..models.trained.block_preimage import BlockPreimageLabeller
    from ..models.trained.labeller import PrimeDepthLabeller

    cls = BlockPreimageLabeller if ablation.block_preimage else PrimeDepthLabeller
    if cls is PrimeDepthLabeller:
        kwargs = {k: v for k, v in kwargs.items() if k != "block_stage"}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(**kwargs)


def enable_gradient_checkpointing(model: torch.nn.Module) -> int:
    """Recompute refiner blocks and head ResNet/attention blocks in the backward pass. Returns how many."""
    from torch.utils.checkpoint import checkpoint

    from ..models.trained.labeller import RefinerBlock
    from ..models.trained.layers import ResnetBlock, SingleHeadSpatialAttention

    count = 0
    for module in model.modules():
        if (
            isinstance(module, (RefinerBlock, ResnetBlock, SingleHeadSpatialAttention))
            and "forward" not in module.__dict__
        ):
            original = module.forward

            def forward(*args, _f=original, _m=module, **kwargs):
                if _m.training and torch.is_grad_enabled():
                    return checkpoint(_f, *args, use_reentrant=False, **kwargs)
                return _f(*args, **kwargs)

            module.forward = forward
            count += 1
    return count


def cast_preimage(p: Preimage, dtype: torch.dtype) -> Preimage:
    def c(x):
        return x.to(dtype) if isinstance(x, torch.Tensor) else x

    def m(b):
        return BlockMaps(c(b.self_maps), c(b.cross_maps)) if b is not None else None

    return Preimage(
        [c(f) for f in p.features],
        [m(b) for b in p.encoder_maps],
        m(p.mid_maps),
        [m(b) for b in p.decoder_maps],
        c(p.emb),
        c(p.context),
    )


def lr_lambda(kind: str, warmup: int, total: int, min_ratio: float):
    def f(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if kind == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        if kind == "linear":
            return min_ratio + (1 - min_ratio) * (1 - progress)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return f


def numpy_rng_state() -> dict:
    """numpy's global RNG state as a tensor and plain numbers (what ``torch.load(weights_only=True)`` reads)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "kind": kind,
        "keys": torch.from_numpy(keys.astype(np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached),
    }


def set_numpy_rng_state(state) -> None:
    """Restore ``numpy_rng_state()`` (or the tuple of ``np.random.get_state()`` of older checkpoints)."""
    if isinstance(state, dict):
        state = (
            state["kind"],
            state["keys"].numpy().astype(np.uint32),
            state["pos"],
            state["has_gauss"],
            state["cached_gaussian"],
        )
    np.random.set_state(state)


def count_parameters(model: torch.nn.Module) -> dict[str, int]:
    groups: dict[str, int] = {}
    for name, p in model.named_parameters():
        key = name.split(".")[0]
        groups[key] = groups.get(key, 0) + p.numel()
    groups["total"] = sum(p.numel() for p in model.parameters())
    return groups


class MetricsLog:
    """JSONL log (always) + TensorBoard (when importable and not switched off)."""

    def __init__(self, directory: Path, tensorboard: str | bool, enabled: bool):
        self.enabled = enabled
        self.writer = None
        if not enabled:
            return
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "metrics.jsonl"
        if tensorboard in (True, "auto", "true"):
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(directory / "tensorboard"))
            except ImportError:
                if tensorboard is True or tensorboard == "true":
                    raise ImportError(
                        "logging.tensorboard is true but tensorboard is not installed "
                        '(pip install tensorboard), or set it to "auto"'
                    ) from None

    def drop_after(self, step: int) -> None:
        """Forget every row logged after ``step`` (a resumed run replays those steps and logs them again)."""
        if not self.enabled or not self.path.is_file():
            return
        lines = self.path.read_text().splitlines(keepends=True)
        kept = []
        for line in lines:
            try:
                if json.loads(line)["step"] <= step:
                    kept.append(line if line.endswith("\n") else line + "\n")
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a line cut by a kill, or not ours
        if len(kept) != len(lines):
            atomic_write_text(self.path, "".join(kept))

    def scalars(self, step: int, values: dict, prefix: str) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as fh:
            fh.write(json.dumps({"step": step, "split": prefix, **values}) + "\n")
        if self.writer is not None:
            for k, v in values.items():
                if isinstance(v, (int, float)):
                    self.writer.add_scalar(f"{prefix}/{k}", v, step)

    def image(self, step: int, name: str, image: np.ndarray) -> None:
        if self.enabled and self.writer is not None:
            self.writer.add_image(name, image, step, dataformats="HWC")

    def close(self):
        if self.writer is not None:
            self.writer.close()


def _normalise01(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    v = x[valid] if valid.any() else x.reshape(-1)
    lo, hi = np.percentile(v, 2), np.percentile(v, 98)
    return np.clip((x - lo) / max(hi - lo, 1e-8), 0, 1)


# ------------------------------------------------------------------------------------------------------- trainer
class Trainer:
    def __init__(self, config: dict, accelerator=None):
        from accelerate import Accelerator

        from ..pipelines.pipeline import PrimeDepthPipeline, load_labeller

        self.config = config
        c_model, c_train = config["model"], config["train"]
        self.acc = accelerator or Accelerator(mixed_precision=c_train["mixed_precision"])
        self.out = Path(config["output_dir"])
        self.ablation = c_model["ablation"]
        self.variant = resolve_ablation(self.ablation)
        self.seed = int(config["seed"])
        device = self.acc.device

        # frozen parts
        pipe = PrimeDepthPipeline.from_pretrained(c_model["frozen_from"], device="cpu")
        self.frozen_source = c_model["frozen_from"]
        self.pipe = pipe
        self.settings = dict(pipe.settings)
        if self.acc.is_main_process:
            self._save_frozen_once()
        self.acc.wait_for_everyone()
        self.frozen_dtype = DTYPES[c_model["frozen_dtype"]]
        for name in ("vae", "unet", "text_encoder"):
            torch.nn.Module.to(getattr(pipe, name), device=device, dtype=self.frozen_dtype)
            getattr(pipe, name).eval().requires_grad_(False)

        # trained part
        kwargs = self.variant.labeller_kwargs(
            pipe.labeller.config, c_model["labeller"], latent_channels=pipe.vae.config.latent_channels
        )
        if c_model["labeller_init"] == "random":
            model = build_labeller(kwargs, self.variant, self.seed)
        else:
            model = load_labeller(c_model["labeller_init"])
        pipe.labeller = None  # the pipeline's own labeller is not trained
        self.has_segmentation = getattr(model.config, "segmentation_classes", 0) > 0
        self.param_counts = count_parameters(model)
        if c_train["gradient_checkpointing"]:
            enable_gradient_checkpointing(model)
        model.train()

        o = config["optim"]
        optimizer = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad],
            lr=o["lr"],
            betas=tuple(o["betas"]),
            eps=o["eps"],
            weight_decay=o["weight_decay"],
        )
        sch = config["schedule"]
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lr_lambda(sch["kind"], sch["warmup_steps"], c_train["max_steps"], sch["min_lr_ratio"])
        )
        self.model, self.optimizer = self.acc.prepare(model, optimizer)
        self.ema = EMA(self.unwrapped, c_train["ema_decay"]) if c_train["ema_decay"] else None
        self.step = 0

        d = config["data"]
        if is_streaming(d["train"]):  # WebDataset shards: a seeded stream, resumed by position
            self.train_set = StreamingShards.from_specs(d["train"], d["resolution"], self.seed, d["hflip"])
        else:
            self.train_set = build_mixture(d["train"], d["resolution"], self.seed, train=True, hflip=d["hflip"])
        self.val_set = (
            build_mixture(d["val"], d["resolution"], self.seed, train=False, hflip=False) if d["val"] else None
        )
        self.log = MetricsLog(self.out / "logs", config["logging"]["tensorboard"], self.acc.is_main_process)

    # ----------------------------------------------------------------------------------------------- pieces
    @property
    def unwrapped(self):
        return self.acc.unwrap_model(self.model)

    def _save_frozen_once(self) -> None:
        src = Path(self.frozen_source).expanduser()
        if src.is_dir() and all((src / p).is_dir() for p in FROZEN_PARTS):
            return
        target = self.out / "frozen"
        if (target / "model_index.json").is_file():
            return
        with atomic_dir(target) as tmp:
            self.pipe.vae.save_pretrained(tmp / "vae")
            self.pipe.unet.save_pretrained(tmp / "unet")
            self.pipe.text_encoder.save_pretrained(tmp / "text_encoder")
            self.pipe.tokenizer.save_pretrained(tmp / "tokenizer")
            (tmp / "model_index.json").write_text(json.dumps(self._model_index(), indent=2))

    def _model_index(self) -> dict:
        return {
            **self.settings,
            "_class_name": "PrimeDepthPipeline",
            "text_encoder": "text_encoder",
            "tokenizer": "tokenizer",
        }

    def _frozen_dir(self) -> Path:
        src = Path(self.frozen_source).expanduser()
        if src.is_dir() and all((src / p).is_dir() for p in FROZEN_PARTS):
            return src.resolve()
        return (self.out / "frozen").resolve()

    @torch.no_grad()
    def encode_captions(self, captions: list[str]) -> torch.Tensor:
        from ..models.frozen.text_encoder import encode_prompts

        return encode_prompts(self.pipe.text_encoder, self.pipe.tokenizer, list(captions))

    def noise_for(self, indices: list[int], shape) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The posterior and t-noise of each sample, a function of (seed, sample number) only."""
        if self.config["train"]["noise"] == "none":
            return None, None
        return draw_noise(
            shape, [torch.Generator().manual_seed((self.seed * SCENE_SEED_STRIDE + int(i)) % (2**63)) for i in indices]
        )

    def vae_encode(self, x: torch.Tensor) -> torch.Tensor:
        """Scaled posterior mean of ``x``: the latent space of the ``Latent`` ablation's loss."""
        mean = posterior_moments(self.pipe.vae, x.to(self.frozen_dtype)).chunk(2, dim=1)[0]
        return mean.float() * self.settings["scale_factor"]

    def forward(self, batch: dict, indices: list[int] | None, model=None):
        """Loss terms and outputs for one micro-batch; ``indices`` None = noise-free (validation)."""
        model = model or self.model
        dev = self.acc.device
        images = batch["image"].to(dev, self.frozen_dtype)
        request = (model if hasattr(model, "preimage_request") else self.unwrapped).preimage_request()
        with torch.no_grad():
            context = self.encode_captions(batch["caption"]).to(self.frozen_dtype)
            shape = self.pipe.frozen.latent_shape(images.shape[-2:])
            noise_posterior, noise_t = self.noise_for(indices, shape) if indices is not None else (None, None)
            preimage = self.pipe.frozen.preimage(images, context, noise_posterior, noise_t, **request)
            preimage = cast_preimage(preimage, torch.float32)
        with self.acc.autocast():
            out = model(preimage, segmentation=self.has_segmentation)
        pred = out.depth.float()
        target, valid = batch["target"].to(dev), batch["valid"].to(dev)
        if pred.shape[-2:] != target.shape[-2:]:
            raise ValueError(
                f"prediction {tuple(pred.shape[-2:])} and target {tuple(target.shape[-2:])} differ: "
                "use a resolution that is a multiple of 8"
            )
        if self.variant.loss_space == "latent":
            depth_loss = latent_depth_loss(self.vae_encode, pred, target, valid)
        else:
            depth_loss = ssi_loss(pred, target, valid)
        dice = focal = None
        if self.has_segmentation:
            labels = batch["labels"].to(dev)
            seg = out.segmentation.float()
            dice = dice_loss(seg, labels)
            focal = focal_loss(seg, labels, gamma=self.config["train"]["segmentation_gamma"])
        return combine_losses(depth_loss, dice, focal), out

    # ------------------------------------------------------------------------------------------------- loop
    def train(self, max_steps: int | None = None, stop_after: int | None = None) -> dict:
        """Run to ``max_steps`` (config default); ``stop_after`` ends early after that many steps (as if killed
        right after a checkpoint), for tests and time-boxed jobs."""
        c = self.config
        total = max_steps or c["train"]["max_steps"]
        end = total if stop_after is None else min(total, self.step + stop_after)
        A = c["train"]["grad_accum"]
        sampler = StepSampler(
            c["train"]["batch_size"], A, self.acc.num_processes, self.acc.process_index, self.step, end
        )
        if isinstance(self.train_set, StreamingShards):
            loader = self.train_set.loader(
                sampler.per, self.acc.process_index, self.acc.num_processes, self.step * A, c["data"]["num_workers"]
            )
        else:
            loader = DataLoader(
                self.train_set,
                batch_size=sampler.per,
                sampler=sampler,
                collate_fn=collate,
                num_workers=c["data"]["num_workers"],
            )
        batches = iter(loader)
        per = sampler.per
        history = []
        t0 = time.perf_counter()
        if self.step == 0:
            if self.acc.is_main_process:
                self.log.scalars(0, {f"params/{k}": v for k, v in self.param_counts.items()}, "model")
            if self.val_set is not None:
                self.validate(write_images=False)  # the starting point of the validation curve
        while self.step < end:
            step = self.step
            self.model.train()
            sums: dict[str, float] = {}
            for a in range(A):
                batch = next(batches)
                base = step * c["train"]["batch_size"] + (a * self.acc.num_processes + self.acc.process_index) * per
                sync = contextlib.nullcontext() if a == A - 1 else self.acc.no_sync(self.model)
                with sync:
                    terms, _ = self.forward(batch, list(range(base, base + per)))
                    self.acc.backward(terms.total / A)
                for k, v in terms.as_floats().items():
                    sums[k] = sums.get(k, 0.0) + v / A
            if c["optim"]["max_grad_norm"]:
                grad_norm = self.acc.clip_grad_norm_(self.model.parameters(), c["optim"]["max_grad_norm"])
                sums["grad_norm"] = float(grad_norm)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            if self.ema is not None:
                self.ema.update(self.unwrapped)
            self.step = step + 1
            history.append(sums["loss"])
            if self.step % c["logging"]["every"] == 0 or self.step == end:
                reduced = {
                    k: float(self.acc.reduce(torch.tensor(v, device=self.acc.device), "mean")) for k, v in sums.items()
                }
                reduced["lr"] = self.scheduler.get_last_lr()[0]
                reduced["sec_per_step"] = (time.perf_counter() - t0) / max(1, len(history))
                self.log.scalars(self.step, reduced, "train")
            if self.val_set is not None and (self.step % c["validation"]["every"] == 0 or self.step == total):
                self.validate()
            if self.step % c["checkpoint"]["every"] == 0 or self.step == end:
                self.save_checkpoint()
        self.acc.wait_for_everyone()
        return {"steps": self.step, "train_loss": history}

    # ------------------------------------------------------------------------------------------- validation
    @torch.no_grad()
    def validate(self, write_images: bool = True) -> dict:
        """Noise-free validation on the first ``validation.samples`` items: losses and depth metrics (main process;
        EMA weights when EMA is on)."""
        from ..evaluation.protocol import score_in_own_range

        results: dict = {}
        if self.acc.is_main_process:
            model = self.unwrapped
            backup = None
            if self.ema is not None:
                backup = {k: v.detach().clone() for k, v in model.state_dict().items()}
                self.ema.copy_to(model)
            model.eval()
            v = self.config["validation"]
            n = min(v["samples"], len(self.val_set))
            sums: dict[str, float] = {}
            metrics: dict[str, list] = {}
            panels = []
            for start in range(0, n, v["batch_size"]):
                items = [self.val_set[i] for i in range(start, min(n, start + v["batch_size"]))]
                batch = collate(items)
                terms, out = self.forward(batch, None, model=model)
                for k, val in terms.as_floats().items():
                    sums[k] = sums.get(k, 0.0) + val * len(items)
                pred = out.depth.float().mean(1).cpu().numpy()
                for i, item in enumerate(items):
                    try:
                        scores = score_in_own_range(pred[i], item["depth"].numpy(), item["valid"].numpy())[0]
                    except ValueError:  # fewer than two pixels with depth: nothing to score
                        scores = {}
                    for k, val in scores.items():
                        metrics.setdefault(k, []).append(val)
                    if len(panels) < v["images"]:
                        rgb = (item["image"].permute(1, 2, 0).numpy() + 1) / 2
                        tv = item["valid"].numpy()
                        tgt = _normalise01(item["target"].numpy(), tv) * tv
                        prd = _normalise01(pred[i], tv)
                        panels.append(
                            np.concatenate([rgb, np.repeat(tgt[..., None], 3, 2), np.repeat(prd[..., None], 3, 2)], 1)
                        )
            results = {k: val / max(n, 1) for k, val in sums.items()}
            results.update({k: float(np.mean(val)) for k, val in metrics.items()})
            self.log.scalars(self.step, results, "val")
            if write_images and panels:
                grid = (np.clip(np.concatenate(panels, 0), 0, 1) * 255).astype(np.uint8)
                from PIL import Image

                with atomic_path(self.out / "samples" / f"step-{self.step:06d}.png") as tmp:
                    Image.fromarray(grid).save(tmp, format="PNG")
                self.log.image(self.step, "val/rgb_target_prediction", grid)
            if backup is not None:
                model.load_state_dict(backup)
            model.train()
        self.acc.wait_for_everyone()
        return results

    # ------------------------------------------------------------------------------------------- checkpoints
    def save_checkpoint(self) -> Path | None:
        self.acc.wait_for_everyone()
        final = self.out / "checkpoints" / f"step-{self.step:06d}"
        if self.acc.is_main_process:
            with atomic_dir(final) as tmp:
                self._write_checkpoint(tmp)
            atomic_write_text(self.out / "checkpoints" / "latest", final.name + "\n")
            self._prune()
        self.acc.wait_for_everyone()
        return final

    def _write_checkpoint(self, tmp: Path) -> None:
        """Everything a resume needs, in files that load without unpickling code (safetensors, JSON, and a
        ``torch.save`` of tensors and plain containers only, readable with ``weights_only=True``)."""
        from safetensors.torch import save_file

        (tmp / "training").mkdir(parents=True)
        model = self.unwrapped
        raw = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}
        if self.ema is not None:
            save_file(raw, str(tmp / "training" / "labeller.safetensors"))
            save_file(
                {k: v.contiguous() for k, v in self.ema.shadow.items()}, str(tmp / "training" / "ema.safetensors")
            )
            self.ema.copy_to(model)
            model.save_pretrained(tmp / "labeller")
            model.load_state_dict(raw)
        else:
            model.save_pretrained(tmp / "labeller")
        torch.save(
            {
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.acc.scaler.state_dict() if self.acc.scaler is not None else None,
                "ema": {"decay": self.ema.decay, "updates": self.ema.updates} if self.ema else None,
                "rng": {"torch": torch.get_rng_state(), "numpy": numpy_rng_state()},
            },
            tmp / "training" / "optimizer.pt",
        )
        (tmp / "training" / "state.json").write_text(
            json.dumps(
                {
                    "step": self.step,
                    "ablation": self.ablation,
                    "param_counts": self.param_counts,
                    "stream": self.stream_position(),
                    "config": self.config,
                },
                indent=2,
            )
        )
        self._link_frozen(tmp)
        (tmp / "model_index.json").write_text(json.dumps(self._model_index(), indent=2))

    def _link_frozen(self, ckpt: Path) -> None:
        frozen = self._frozen_dir()
        for part in FROZEN_PARTS:
            if self.config["checkpoint"]["frozen"] == "copy":
                shutil.copytree(frozen / part, ckpt / part)
            else:
                os.symlink(os.path.relpath(frozen / part, ckpt.parent / "x"), ckpt / part, target_is_directory=True)

    def _prune(self) -> None:
        keep = self.config["checkpoint"]["keep_last"]
        if not keep:
            return
        ckpts = sorted(p for p in (self.out / "checkpoints").glob("step-*") if p.is_dir())
        for old in ckpts[:-keep]:
            shutil.rmtree(old)

    def resume(self, checkpoint: str | Path = "auto", trust_pickle: bool = False) -> bool:
        """Load a checkpoint (``"auto"``: the newest in output_dir, if any). Returns whether one was loaded.

        Every file is read without running code from it (safetensors, JSON, ``torch.load(weights_only=True)``);
        ``trust_pickle`` allows full unpickling of ``optimizer.pt``, for checkpoints of older versions that stored
        numpy objects there. The metrics log forgets the steps after the checkpoint, which are now replayed."""
        from safetensors.torch import load_file

        if str(checkpoint) == "auto":
            latest = self.out / "checkpoints" / "latest"
            if not latest.is_file():
                return False
            checkpoint = self.out / "checkpoints" / latest.read_text().strip()
        ckpt = Path(checkpoint)
        state_file = ckpt / "training" / "state.json"
        if not state_file.is_file():
            raise FileNotFoundError(f"{ckpt}: not a training checkpoint ({state_file} missing)")
        state = json.loads(state_file.read_text())
        if state["ablation"] != self.ablation:
            raise ValueError(f"{ckpt}: checkpoint was trained as {state['ablation']!r}, config says {self.ablation!r}")
        raw_file = ckpt / "training" / "labeller.safetensors"
        if raw_file.is_file():
            weights = load_file(str(raw_file))
        else:
            weights = load_file(str(ckpt / "labeller" / "diffusion_pytorch_model.safetensors"))
        self.unwrapped.load_state_dict(weights, strict=True)
        extra = load_torch_file(ckpt / "training" / "optimizer.pt", trust_pickle=trust_pickle)
        self.optimizer.load_state_dict(extra["optimizer"])
        self.scheduler.load_state_dict(extra["scheduler"])
        if extra["scaler"] is not None and self.acc.scaler is not None:
            self.acc.scaler.load_state_dict(extra["scaler"])
        if self.ema is not None:
            ema_file = ckpt / "training" / "ema.safetensors"
            if not ema_file.is_file() or extra["ema"] is None:
                raise ValueError(f"{ckpt}: config enables EMA but the checkpoint has none")
            self.ema.load_state_dict({**extra["ema"], "shadow": load_file(str(ema_file))})
        torch.set_rng_state(extra["rng"]["torch"])
        set_numpy_rng_state(extra["rng"]["numpy"])
        self.step = int(state["step"])
        if state.get("stream") != self.stream_position():
            raise ValueError(
                f"{ckpt}: the data stream was at {state.get('stream')}, this run would continue at "
                f"{self.stream_position()}: resume with the same processes and data.num_workers"
            )
        if self.acc.is_main_process:
            self.log.drop_after(self.step)
        return True

    def stream_position(self) -> dict | None:
        """Where a streaming training set stands: micro-batches consumed per process, and the layout that count
        holds for (None for index-addressed datasets, whose position is the step)."""
        if not isinstance(self.train_set, StreamingShards):
            return None
        return {
            "microbatches_per_process": self.step * self.config["train"]["grad_accum"],
            "processes": self.acc.num_processes,
            "num_workers": self.config["data"]["num_workers"],
        }


def run_training(
    config_path: str | None,
    overrides=(),
    resume: str | None = "auto",
    extra: dict | None = None,
    stop_after: int | None = None,
    trust_pickle: bool = False,
) -> Trainer:
    config = load_config(config_path, overrides, extra)
    trainer = Trainer(config)
    if resume:
        trainer.resume(resume, trust_pickle=trust_pickle)
    trainer.train(stop_after=stop_after)
    trainer.log.close()
    return trainer
