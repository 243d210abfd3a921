"""``primedepth train``: the two-stage PrimeDepth training loop on accelerate.

Frozen: VAE encoder, UNet, text tower (optionally half precision). Trained: the labeller (fusion convs, refiner,
heads) or, for ``BlockPreIm``, its single-block variant. One step = ``grad_accum`` micro-batches per process,
AdamW, warm-up + schedule, optional EMA. The data order and every noise draw are functions of (seed, sample number),
and checkpoints hold weights, optimizer, schedule, scaler, EMA and step, so a resumed run continues bit-for-bit.

``Trainer`` holds the models, data and optimizer and runs the step and the loop; checkpoints are written and read
by ``checkpointing.Checkpointer``, validation scores and sample images come from ``validation``, scalars go to
``metrics_log.MetricsLog``. Output folder: ``frozen/`` and ``checkpoints/`` (see ``checkpointing``),
``logs/metrics.jsonl`` (every logged scalar) and ``logs/tensorboard/`` when tensorboard is importable,
``samples/step-000500.png`` (validation images: RGB | target | prediction, as inverse depth).
"""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path

import torch
import torch.utils.checkpoint
from accelerate import Accelerator
from torch.utils.data import DataLoader

from ..constants import SEED_STRIDE
from ..data.mixing import StepSampler, build_mixture, collate
from ..data.streaming import StreamingShards, is_streaming
from ..models.frozen.latent_noising import posterior_moments
from ..models.frozen.single_step import draw_noise
from ..models.frozen.text_encoder import encode_prompts
from ..models.preimage import BlockMaps, Preimage
from ..models.trained.labeller import RefinerBlock
from ..models.trained.layers import ResnetBlock, SingleHeadSpatialAttention
from ..pipelines.pipeline import PrimeDepthPipeline, load_labeller
from ..utils.atomic import remove_stale_temps
from .ablations import resolve_ablation
from .checkpointing import Checkpointer, CheckpointError, TrainingState
from .config import load_config
from .ema import EMA
from .losses import combine_losses, dice_loss, focal_loss, latent_depth_loss, ssi_loss
from .metrics_log import MetricsLog
from .validation import ema_weights, evaluate, write_sample_grid

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


# ------------------------------------------------------------------------------------------------------ helpers
def enable_gradient_checkpointing(model: torch.nn.Module) -> int:
    """Recompute refiner blocks and head ResNet/attention blocks in the backward pass. Returns how many."""
    count = 0
    for module in model.modules():
        if (
            isinstance(module, (RefinerBlock, ResnetBlock, SingleHeadSpatialAttention))
            and "forward" not in module.__dict__
        ):
            original = module.forward

            def forward(*args, _f=original, _m=module, **kwargs):
                if _m.training and torch.is_grad_enabled():
                    return torch.utils.checkpoint.checkpoint(_f, *args, use_reentrant=False, **kwargs)
                return _f(*args, **kwargs)

            module.forward = forward
            count += 1
    return count


def cast_preimage(preimage: Preimage, dtype: torch.dtype) -> Preimage:
    """``preimage`` with every tensor in ``dtype`` (the frozen side may run in half precision, the labeller not)."""

    def cast(x):
        return x.to(dtype) if isinstance(x, torch.Tensor) else x

    def cast_maps(maps):
        return BlockMaps(cast(maps.self_maps), cast(maps.cross_maps)) if maps is not None else None

    return Preimage(
        [cast(f) for f in preimage.features],
        [cast_maps(b) for b in preimage.encoder_maps],
        cast_maps(preimage.mid_maps),
        [cast_maps(b) for b in preimage.decoder_maps],
        cast(preimage.emb),
        cast(preimage.context),
    )


def lr_lambda(kind: str, warmup: int, total: int, min_ratio: float):
    """The learning-rate factor of each step: linear warm-up, then constant, linear or cosine decay to
    ``min_ratio`` at ``total``."""

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if kind == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        if kind == "linear":
            return min_ratio + (1 - min_ratio) * (1 - progress)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def count_parameters(model: torch.nn.Module) -> dict[str, int]:
    """Parameters per top-level submodule, and ``total``."""
    groups: dict[str, int] = {}
    for name, p in model.named_parameters():
        key = name.split(".")[0]
        groups[key] = groups.get(key, 0) + p.numel()
    groups["total"] = sum(p.numel() for p in model.parameters())
    return groups


# ------------------------------------------------------------------------------------------------------- trainer
class Trainer:
    """One training run: the frozen parts, the labeller and its optimizer, the data; ``train`` runs the loop."""

    def __init__(self, config: dict, accelerator=None):
        self.config = config
        model_config, train_config = config["model"], config["train"]
        self.acc = accelerator or Accelerator(mixed_precision=train_config["mixed_precision"])
        self.out = Path(config["output_dir"])
        self.ablation = model_config["ablation"]
        self.variant = resolve_ablation(self.ablation)
        self.seed = int(config["seed"])
        device = self.acc.device

        # frozen parts: the trainer keeps them and drops the loaded pipeline (its labeller is not the trained one)
        pipe = PrimeDepthPipeline.from_pretrained(model_config["frozen_from"], device="cpu")
        self.frozen = pipe.frozen
        self.text_encoder, self.tokenizer = pipe.text_encoder, pipe.tokenizer
        self.settings = dict(pipe.settings)
        checkpoint_config = config["checkpoint"]
        self.checkpointer = Checkpointer(
            self.out,
            model_config["frozen_from"],
            self.settings,
            frozen_mode=checkpoint_config["frozen"],
            keep_last=checkpoint_config["keep_last"],
        )
        if self.acc.is_main_process:
            remove_stale_temps(self.out)  # checkpoints and files of runs killed while writing them
            self.checkpointer.save_frozen_once(pipe.vae, pipe.unet, pipe.text_encoder, pipe.tokenizer)
        self.acc.wait_for_everyone()
        self.frozen_dtype = DTYPES[model_config["frozen_dtype"]]
        for module in (pipe.vae, pipe.unet, pipe.text_encoder):
            torch.nn.Module.to(module, device=device, dtype=self.frozen_dtype)
            module.eval().requires_grad_(False)

        # trained part
        kwargs = self.variant.labeller_kwargs(
            pipe.labeller.config, model_config["labeller"], latent_channels=pipe.vae.config.latent_channels
        )
        if model_config["labeller_init"] == "random":
            model = self.variant.build_labeller(kwargs, self.seed)
        else:
            model = load_labeller(model_config["labeller_init"])
        del pipe
        self.has_segmentation = getattr(model.config, "segmentation_classes", 0) > 0
        self.param_counts = count_parameters(model)
        if train_config["gradient_checkpointing"]:
            enable_gradient_checkpointing(model)
        model.train()

        optim = config["optim"]
        optimizer = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad],
            lr=optim["lr"],
            betas=tuple(optim["betas"]),
            eps=optim["eps"],
            weight_decay=optim["weight_decay"],
        )
        schedule = config["schedule"]
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lr_lambda(schedule["kind"], schedule["warmup_steps"], train_config["max_steps"], schedule["min_lr_ratio"]),
        )
        self.model, self.optimizer = self.acc.prepare(model, optimizer)
        self.ema = EMA(self.unwrapped, train_config["ema_decay"]) if train_config["ema_decay"] else None
        self.step = 0

        data = config["data"]
        if is_streaming(data["train"]):  # WebDataset shards: a seeded stream, resumed by position
            self.train_set = StreamingShards.from_specs(data["train"], data["resolution"], self.seed, data["hflip"])
        else:
            self.train_set = build_mixture(
                data["train"], data["resolution"], self.seed, train=True, hflip=data["hflip"]
            )
        self.val_set = (
            build_mixture(data["val"], data["resolution"], self.seed, train=False, hflip=False) if data["val"] else None
        )
        self.log = MetricsLog(self.out / "logs", config["logging"]["tensorboard"], self.acc.is_main_process)

    @property
    def unwrapped(self):
        return self.acc.unwrap_model(self.model)

    @property
    def training_state(self) -> TrainingState:
        return TrainingState(self.unwrapped, self.optimizer, self.scheduler, self.acc.scaler, self.ema)

    # ------------------------------------------------------------------------------------------------- step
    @torch.no_grad()
    def encode_captions(self, captions: list[str]) -> torch.Tensor:
        return encode_prompts(self.text_encoder, self.tokenizer, list(captions))

    def noise_for(self, indices: list[int], shape) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The posterior and t-noise of each sample, a function of (seed, sample number) only."""
        if self.config["train"]["noise"] == "none":
            return None, None
        return draw_noise(
            shape, [torch.Generator().manual_seed((self.seed * SEED_STRIDE + int(i)) % (2**63)) for i in indices]
        )

    def vae_encode(self, x: torch.Tensor) -> torch.Tensor:
        """Scaled posterior mean of ``x``: the latent space of the ``Latent`` ablation's loss."""
        mean = posterior_moments(self.frozen.vae, x.to(self.frozen_dtype)).chunk(2, dim=1)[0]
        return mean.float() * self.settings["scale_factor"]

    def forward(self, batch: dict, indices: list[int] | None, model=None):
        """Loss terms and outputs for one micro-batch; ``indices`` None = noise-free (validation)."""
        model = model or self.model
        device = self.acc.device
        images = batch["image"].to(device, self.frozen_dtype)
        request = (model if hasattr(model, "preimage_request") else self.unwrapped).preimage_request()
        with torch.no_grad():
            context = self.encode_captions(batch["caption"]).to(self.frozen_dtype)
            shape = self.frozen.latent_shape(images.shape[-2:])
            noise_posterior, noise_t = self.noise_for(indices, shape) if indices is not None else (None, None)
            preimage = self.frozen.preimage(images, context, noise_posterior, noise_t, **request)
            preimage = cast_preimage(preimage, torch.float32)
        with self.acc.autocast():
            out = model(preimage, segmentation=self.has_segmentation)
        pred = out.depth.float()
        target, valid = batch["target"].to(device), batch["valid"].to(device)
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
            labels = batch["labels"].to(device)
            seg = out.segmentation.float()
            dice = dice_loss(seg, labels)
            focal = focal_loss(seg, labels, gamma=self.config["train"]["segmentation_gamma"])
        return combine_losses(depth_loss, dice, focal), out

    # ------------------------------------------------------------------------------------------------- loop
    def _loader(self, sampler: StepSampler, grad_accum: int):
        num_workers = self.config["data"]["num_workers"]
        if isinstance(self.train_set, StreamingShards):
            return self.train_set.loader(
                sampler.per, self.acc.process_index, self.acc.num_processes, self.step * grad_accum, num_workers
            )
        return DataLoader(
            self.train_set, batch_size=sampler.per, sampler=sampler, collate_fn=collate, num_workers=num_workers
        )

    def train(self, max_steps: int | None = None, stop_after: int | None = None) -> dict:
        """Run to ``max_steps`` (config default); ``stop_after`` ends early after that many steps (as if killed
        right after a checkpoint), for tests and time-boxed jobs."""
        config, train_config = self.config, self.config["train"]
        total = max_steps or train_config["max_steps"]
        end = total if stop_after is None else min(total, self.step + stop_after)
        grad_accum, batch_size = train_config["grad_accum"], train_config["batch_size"]
        processes, rank = self.acc.num_processes, self.acc.process_index
        sampler = StepSampler(batch_size, grad_accum, processes, rank, self.step, end)
        per_process = sampler.per
        batches = iter(self._loader(sampler, grad_accum))
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
            for micro in range(grad_accum):
                batch = next(batches)
                first = step * batch_size + (micro * processes + rank) * per_process
                sync = contextlib.nullcontext() if micro == grad_accum - 1 else self.acc.no_sync(self.model)
                with sync:
                    terms, _ = self.forward(batch, list(range(first, first + per_process)))
                    self.acc.backward(terms.total / grad_accum)
                for k, v in terms.as_floats().items():
                    sums[k] = sums.get(k, 0.0) + v / grad_accum
            if config["optim"]["max_grad_norm"]:
                grad_norm = self.acc.clip_grad_norm_(self.model.parameters(), config["optim"]["max_grad_norm"])
                sums["grad_norm"] = float(grad_norm)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            if self.ema is not None:
                self.ema.update(self.unwrapped)
            self.step = step + 1
            history.append(sums["loss"])
            if self.step % config["logging"]["every"] == 0 or self.step == end:
                reduced = {
                    k: float(self.acc.reduce(torch.tensor(v, device=self.acc.device), "mean")) for k, v in sums.items()
                }
                reduced["lr"] = self.scheduler.get_last_lr()[0]
                reduced["sec_per_step"] = (time.perf_counter() - t0) / max(1, len(history))
                self.log.scalars(self.step, reduced, "train")
            if self.val_set is not None and (self.step % config["validation"]["every"] == 0 or self.step == total):
                self.validate()
            if self.step % config["checkpoint"]["every"] == 0 or self.step == end:
                self.save_checkpoint()
        self.acc.wait_for_everyone()
        return {"steps": self.step, "train_loss": history}

    # ------------------------------------------------------------------------------------------- validation
    @torch.no_grad()
    def validate(self, write_images: bool = True) -> dict:
        """Noise-free validation on the first ``validation.samples`` items: losses and depth metrics (main process;
        EMA weights when EMA is on), logged and returned; ``write_images`` also writes the sample image."""
        results: dict = {}
        if self.acc.is_main_process:
            model = self.unwrapped
            with ema_weights(model, self.ema):
                model.eval()
                results, panels = evaluate(
                    lambda batch: self.forward(batch, None, model=model), self.val_set, self.config["validation"]
                )
                self.log.scalars(self.step, results, "val")
                if write_images and panels:
                    grid = write_sample_grid(self.out / "samples" / f"step-{self.step:06d}.png", panels)
                    self.log.image(self.step, "val/rgb_target_prediction", grid)
            model.train()
        self.acc.wait_for_everyone()
        return results

    # ------------------------------------------------------------------------------------------- checkpoints
    def save_checkpoint(self) -> Path:
        """Write the checkpoint of the current step (main process) and return its folder."""
        self.acc.wait_for_everyone()
        final = self.checkpointer.root / f"step-{self.step:06d}"
        if self.acc.is_main_process:
            record = {
                "ablation": self.ablation,
                "param_counts": self.param_counts,
                "stream": self.stream_position(),
                "config": self.config,
            }
            final = self.checkpointer.save(self.step, self.training_state, record)
        self.acc.wait_for_everyone()
        return final

    def resume(self, checkpoint: str | Path = "auto", trust_pickle: bool = False) -> bool:
        """Load a checkpoint (``"auto"``: the newest in output_dir, if any). Returns whether one was loaded.

        Nothing is unpickled unless ``trust_pickle`` (see ``Checkpointer.load``). The metrics log forgets the steps
        after the checkpoint, which are now replayed (all of them when there is no checkpoint: the run starts over).
        Raises ``CheckpointError`` for a checkpoint that cannot be resumed."""
        if str(checkpoint) == "auto":
            checkpoint = self.checkpointer.latest()
            if checkpoint is None:
                if self.acc.is_main_process:
                    self.log.drop_after(-1)
                return False
            if self.acc.is_main_process:
                self.checkpointer.prune()  # a run killed between writing its newest checkpoint and pruning
        checkpoint = Path(checkpoint)
        record = self.checkpointer.load(checkpoint, self.training_state, self.ablation, trust_pickle=trust_pickle)
        self.step = int(record["step"])
        if record.get("stream") != self.stream_position():
            raise CheckpointError(
                f"{checkpoint}: the data stream was at {record.get('stream')}, this run would continue at "
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
    """Load the config, build a ``Trainer``, resume it when asked and train it; returns the trainer."""
    config = load_config(config_path, overrides, extra)
    trainer = Trainer(config)
    if resume:
        trainer.resume(resume, trust_pickle=trust_pickle)
    elif trainer.acc.is_main_process:
        trainer.log.drop_after(-1)  # trained from step 0: the log of an earlier attempt goes
    trainer.train(stop_after=stop_after)
    trainer.log.close()
    return trainer
