"""Side-by-side speed and memory of PrimeDepth and the depth estimators users choose between.

Every contender is built with random weights of its real architecture (weights do not change speed), fed a square
image of each resolution, and timed per image: median of ``repeats`` runs after ``warmup`` runs. Each
(contender, resolution) pair runs in a fresh subprocess so that its peak memory is its own:

* CPU: the process's resident-set high-water mark (``VmHWM``, reset through ``/proc/self/clear_refs`` after the
  model is built), minus the resident set just before the first run (weights, runtime) = activation memory;
* CUDA: ``torch.cuda.max_memory_allocated`` minus the allocation before the first run.

Marigold's v1-0 protocol (50 DDIM steps x 10 ensemble members) is extrapolated linearly from 1 x 1 and 2 x 1 runs
(``t(S, E) = E * (t11 + (S - 1) * (t21 - t11))``; the ensemble alignment solver is left out), which is exact up to
the small fixed costs and says so in the table. The text tower is left out of every contender: its output for a
fixed prompt is computed once and reused (PrimeDepth with ``caption="none"``, Marigold's empty-text embedding).

Run ``python -m primedepth.benchmark --help`` or ``primedepth bench --help``.
"""

from __future__ import annotations

import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

RESOLUTIONS = (256, 384, 512, 768, 1024)
CPU_DEFAULT_RESOLUTIONS = (256, 512)
MARIGOLD_PROTOCOL = (50, 10)  # v1-0: DDIM steps, ensemble size

# Depth Anything V2 S/B/L (the released ``depth-anything/Depth-Anything-V2-*-hf`` configs, written out here).
DEPTH_ANYTHING_V2 = {
    "S": dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, stages=(3, 6, 9, 12),
              neck_hidden_sizes=(48, 96, 192, 384), fusion_hidden_size=64),
    "B": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, stages=(3, 6, 9, 12),
              neck_hidden_sizes=(96, 192, 384, 768), fusion_hidden_size=128),
    "L": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, stages=(5, 12, 18, 24),
              neck_hidden_sizes=(256, 512, 1024, 1024), fusion_hidden_size=256),
}
TINY_DEPTH_ANYTHING = dict(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, stages=(1, 2, 3, 4),
                           neck_hidden_sizes=(8, 16, 32, 32), fusion_hidden_size=16)


# ---------------------------------------------------------------------------------------------------- contenders


@dataclass
class Runner:
    """A built contender: ``run(images)`` predicts one batch; ``modules`` hold the resident weights."""

    run: Callable[[torch.Tensor], object]
    modules: list[torch.nn.Module]
    input_size: Callable[[int], int] = lambda res: res
    value_range: tuple[float, float] = (-1.0, 1.0)
    weights_bytes: int | None = None  # when the weights are not torch modules (onnxruntime)


@dataclass
class Contender:
    name: str
    label: str
    build: Callable[..., Runner]
    notes: str = ""
    options: dict = field(default_factory=dict)


def _official_config(scale: str) -> dict:
    if scale == "full":
        from .conversion.official_config import FULL_OFFICIAL_CONFIG

        return FULL_OFFICIAL_CONFIG
    if scale == "tiny":
        from .pipelines.tiny_random import TINY_OFFICIAL_CONFIG

        return TINY_OFFICIAL_CONFIG
    raise ValueError(f"scale must be 'full' or 'tiny', got {scale!r}")


def _stub_text_encoder(context_dim: int):
    """A one-layer text tower of the right width (the benchmarks reuse one precomputed prompt embedding)."""
    from transformers import CLIPTextConfig, CLIPTextModel

    from .models.text_encoder import CONTEXT_LENGTH, byte_level_tokenizer

    tokenizer = byte_level_tokenizer()
    tokenizer.model_max_length = CONTEXT_LENGTH
    config = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=context_dim, intermediate_size=64,
                            num_hidden_layers=1, num_attention_heads=max(1, context_dim // 64),
                            max_position_embeddings=CONTEXT_LENGTH, bos_token_id=tokenizer.bos_token_id,
                            eos_token_id=tokenizer.eos_token_id, pad_token_id=0)
    return CLIPTextModel(config).eval(), tokenizer


def _sd_parts(scale: str, unet_in_channels: int = 4):
    from .models.frozen_sd import build_unet, build_vae

    config = _official_config(scale)
    unet = build_unet({**config["unet"], "in_channels": unet_in_channels}).eval().requires_grad_(False)
    vae = build_vae(config["vae_ddconfig"], config["scale_factor"]).eval().requires_grad_(False)
    return config, unet, vae


def _random_pipeline(scale: str, device: torch.device):
    """A ``PrimeDepthPipeline`` with random weights of the real (or tiny) architecture and a stub text tower."""
    from .conversion.official_config import labeller_kwargs_from_official, noise_kwargs_from_official
    from .models.labeller import PrimeDepthLabeller
    from .pipelines.pipeline import PrimeDepthPipeline

    config, unet, vae = _sd_parts(scale)
    labeller = PrimeDepthLabeller(**labeller_kwargs_from_official(config))
    text_encoder, tokenizer = _stub_text_encoder(config["unet"]["context_dim"])
    pipe = PrimeDepthPipeline(vae, unet, text_encoder, tokenizer, labeller,
                              {**noise_kwargs_from_official(config), "default_caption": "none"})
    return pipe.to(device=device)


def build_primedepth(scale: str, device: torch.device, *, attention: str = "pooled", segmentation: bool = False,
                     frozen_dtype: torch.dtype = torch.float32, labeller_dtype: torch.dtype = torch.float32,
                     channels_last: bool = False, low_memory: bool = False, compile: bool = False,
                     keep_vae_decoder: bool = True, precision: str | None = None) -> Runner:
    """PrimeDepth at the given precision split / attention mode (``attention="naive"`` + segmentation + fp32 is the
    authors' arithmetic). ``precision``: a named configuration (``"auto"`` included) instead of the two dtypes."""
    pipe = _random_pipeline(scale, device)
    config = _official_config(scale)
    pipe.optimize(frozen_dtype=frozen_dtype, labeller_dtype=labeller_dtype, channels_last=channels_last,
                  compile=compile, drop_vae_decoder=not keep_vae_decoder)
    if precision is not None:
        pipe.set_precision(precision)
    context = torch.zeros(1, 77, config["unet"]["context_dim"], device=device)

    def run(images):
        return pipe.predict_tensor(images, context.expand(images.shape[0], -1, -1), generator=None,
                                   segmentation=segmentation, attention=attention, low_memory=low_memory)

    return Runner(run, [pipe.vae, pipe.unet, pipe.labeller])


def build_primedepth_onnx(scale: str, device: torch.device, *, threads: int | None = None) -> Runner:
    """PrimeDepth's single step exported to ONNX (fp32, ``primedepth export onnx``) and run by onnxruntime on the
    CPU; the export (into a temporary folder) is part of the build, not of the timed runs."""
    import tempfile

    from .export.onnx import export_onnx, onnx_session, run_onnx

    if device.type != "cpu":
        raise ValueError("the primedepth-onnx contender runs onnxruntime's CPU provider only")
    folder = tempfile.TemporaryDirectory(prefix="primedepth-onnx-")
    path = Path(folder.name) / "primedepth.onnx"
    export_onnx(_random_pipeline(scale, device), path)
    session = onnx_session(path, threads=threads or torch.get_num_threads())
    weights = sum(f.stat().st_size for f in Path(folder.name).iterdir())

    def run(images):
        run.folder = folder  # the exported files live as long as the runner
        return run_onnx(session, images)

    return Runner(run, [], weights_bytes=weights)


def _channels_last(*modules):
    for module in modules:
        torch.nn.Module.to(module, memory_format=torch.channels_last)


def build_sd_single_step(scale: str, device: torch.device, *, channels_last: bool = True) -> Runner:
    """VAE encode (posterior mean) + one UNet call + VAE decode: the E2E-FT / Marigold v1-1 single-step shape.
    channels_last like ours by default ("same settings")."""
    config, unet, vae = _sd_parts(scale)
    unet.to(device)
    vae.to(device)
    if channels_last:
        _channels_last(unet, vae)
    context = torch.zeros(1, 77, config["unet"]["context_dim"], device=device)
    scale_factor = config["scale_factor"]
    t = torch.tensor([999], device=device)

    @torch.no_grad()
    def run(images):
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        moments = vae.quant_conv(vae.encoder(images))
        latent = moments.chunk(2, dim=1)[0] * scale_factor
        pred = unet(latent, t, encoder_hidden_states=context.expand(images.shape[0], -1, -1), return_dict=False)[0]
        return vae.decoder(vae.post_quant_conv(pred / scale_factor))

    return Runner(run, [unet, vae])


def build_marigold(scale: str, device: torch.device, *, steps: int = 1, ensemble: int = 1,
                   channels_last: bool = True) -> Runner:
    """diffusers' ``MarigoldDepthPipeline`` around random SD 2 components (UNet with 8 input channels); UNet and VAE
    in channels_last by default (as fast as we make ours)."""
    from diffusers import DDIMScheduler, MarigoldDepthPipeline

    config, unet, vae = _sd_parts(scale, unet_in_channels=8)
    text_encoder, tokenizer = _stub_text_encoder(config["unet"]["context_dim"])
    scheduler = DDIMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                              beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False,
                              steps_offset=1, prediction_type="v_prediction", timestep_spacing="leading")
    pipe = MarigoldDepthPipeline(unet=unet, vae=vae, scheduler=scheduler, text_encoder=text_encoder,
                                 tokenizer=tokenizer, prediction_type="depth", scale_invariant=True,
                                 shift_invariant=True, default_denoising_steps=steps,
                                 default_processing_resolution=768).to(device)
    pipe.set_progress_bar_config(disable=True)
    if channels_last:
        _channels_last(unet, vae)

    def run(images):
        return pipe(images, num_inference_steps=steps, ensemble_size=ensemble,
                    processing_resolution=max(images.shape[-2:]), match_input_resolution=True, batch_size=1,
                    generator=torch.Generator(device=device).manual_seed(0), output_type="pt")

    return Runner(run, [unet, vae], value_range=(0.0, 1.0))


def depth_anything_config(variant: str | dict):
    from transformers import DepthAnythingConfig, Dinov2Config

    spec = DEPTH_ANYTHING_V2[variant] if isinstance(variant, str) else variant
    backbone = Dinov2Config(hidden_size=spec["hidden_size"], num_hidden_layers=spec["num_hidden_layers"],
                            num_attention_heads=spec["num_attention_heads"], mlp_ratio=4, patch_size=14,
                            image_size=518, layerscale_value=1.0, reshape_hidden_states=False,
                            out_features=[f"stage{s}" for s in spec["stages"]])
    return DepthAnythingConfig(backbone_config=backbone, patch_size=14, reassemble_hidden_size=spec["hidden_size"],
                               reassemble_factors=[4, 2, 1, 0.5], neck_hidden_sizes=list(spec["neck_hidden_sizes"]),
                               fusion_hidden_size=spec["fusion_hidden_size"], head_in_index=-1, head_hidden_size=32,
                               depth_estimation_type="relative")


def build_depth_anything(scale: str, device: torch.device, *, variant: str = "S") -> Runner:
    """transformers' ``DepthAnythingForDepthEstimation``; inputs are resized to the next multiple of 14."""
    from transformers import DepthAnythingForDepthEstimation

    model = DepthAnythingForDepthEstimation(depth_anything_config(variant if scale == "full" else TINY_DEPTH_ANYTHING))
    model.eval().requires_grad_(False).to(device)

    @torch.no_grad()
    def run(images):
        return model(pixel_values=images).predicted_depth

    return Runner(run, [model], input_size=lambda res: 14 * math.ceil(res / 14))


def contenders() -> dict[str, Contender]:
    """Every contender by name. ``primedepth`` is the fastest correct configuration (``fastest_primedepth``)."""
    bf16 = torch.bfloat16
    items = [
        Contender("primedepth", "PrimeDepth (ours, fp32)", build_primedepth,
                  "pooled fused attention, no segmentation head, channels_last, fp32"),
        Contender("primedepth-auto", "PrimeDepth (ours, --dtype auto)", build_primedepth,
                  "the configuration `--dtype auto` picks on this device, channels_last",
                  dict(precision="auto", channels_last=True)),
        Contender("primedepth-onnx", "PrimeDepth exported to ONNX, onnxruntime", build_primedepth_onnx,
                  "`primedepth export onnx` fp32, onnxruntime CPU provider, same thread count"),
        Contender("primedepth-authors", "PrimeDepth, authors' arithmetic", build_primedepth,
                  "N x N maps + stretch/pool/resize, segmentation head on, fp32",
                  dict(attention="naive", segmentation=True)),
        Contender("primedepth-plain", "PrimeDepth, pooled, fp32, no other optimisation", build_primedepth,
                  "before the memory-format / precision switches"),
        Contender("primedepth-bf16", "PrimeDepth, bf16 UNet+VAE, fp32 labeller", build_primedepth,
                  "mixed precision", dict(frozen_dtype=bf16, channels_last=True)),
        Contender("primedepth-bf16-all", "PrimeDepth, everything bf16", build_primedepth,
                  "bf16 everywhere (GroupNorms fp32)", dict(frozen_dtype=bf16, labeller_dtype=bf16,
                                                          channels_last=True)),
        Contender("primedepth-fp16", "PrimeDepth, fp16 UNet+VAE, fp32 labeller", build_primedepth,
                  "mixed precision", dict(frozen_dtype=torch.float16, channels_last=True)),
        Contender("primedepth-fp16-all", "PrimeDepth, everything fp16", build_primedepth,
                  "fp16 everywhere (GroupNorms fp32)", dict(frozen_dtype=torch.float16, labeller_dtype=torch.float16,
                                                          channels_last=True)),
        Contender("primedepth-lowmem", "PrimeDepth, memory-saving switch", build_primedepth,
                  "low_memory=True, VAE decoder dropped",
                  dict(low_memory=True, keep_vae_decoder=False, channels_last=True)),
        Contender("sd-single-step", "Single-step SD depth (VAE enc + UNet + VAE dec)", build_sd_single_step,
                  "E2E-FT / Marigold v1-1 shape, fp32, channels_last"),
        Contender("sd-single-step-nchw", "Single-step SD depth, NCHW", build_sd_single_step,
                  "fp32, default memory format", dict(channels_last=False)),
        Contender("marigold-1x1", "Marigold, 1 step x 1", build_marigold, "diffusers MarigoldDepthPipeline, channels_last",
                  dict(steps=1, ensemble=1)),
        Contender("marigold-2x1", "Marigold, 2 steps x 1", build_marigold, "for the linear extrapolation",
                  dict(steps=2, ensemble=1)),
        Contender("marigold-50x10", "Marigold, 50 steps x 10 (v1-0), measured", build_marigold,
                  "run directly (GPU)", dict(steps=50, ensemble=10)),
    ]
    for v in DEPTH_ANYTHING_V2:
        items.append(Contender(f"depth-anything-v2-{v.lower()}", f"Depth Anything V2-{v}", build_depth_anything,
                               "transformers, input resized to a multiple of 14", dict(variant=v)))
    return {c.name: c for c in items}


def fastest_primedepth_options(device: torch.device) -> dict:
    """Options of ``primedepth`` (ours in fp32) per device (measured, see docs/performance.md): fp32 +
    channels_last. Half precision is the ``primedepth-auto`` row (what ``--dtype auto`` picks, judged on trained
    weights) and the ``primedepth-bf16*`` / ``primedepth-fp16*`` rows."""
    return dict(channels_last=True)


CPU_DEFAULT_CONTENDERS = ("primedepth", "primedepth-auto", "primedepth-onnx", "primedepth-authors", "sd-single-step",
                          "marigold-1x1", "marigold-2x1",
                          "depth-anything-v2-s", "depth-anything-v2-b", "depth-anything-v2-l")
CUDA_DEFAULT_CONTENDERS = tuple(c for c in CPU_DEFAULT_CONTENDERS if c != "primedepth-onnx") + ("marigold-50x10",)


def default_contenders(device: torch.device) -> tuple[str, ...]:
    return CUDA_DEFAULT_CONTENDERS if device.type == "cuda" else CPU_DEFAULT_CONTENDERS


# ---------------------------------------------------------------------------------------------------- measuring


def _proc_status(key: str) -> int:
    match = re.search(rf"^{key}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    return int(match.group(1)) * 1024 if match else 0


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_rss() -> int:
    hwm = _proc_status("VmHWM")
    if hwm:
        return hwm
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)


def _malloc_trim() -> None:
    """Hand freed heap memory back to the OS so that the baseline is the weights, not build-time garbage."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _sync(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def tensor_bytes(modules) -> int:
    seen, total = set(), 0
    for module in modules:
        for t in list(module.parameters()) + list(module.buffers()):
            if t.data_ptr() not in seen:
                seen.add(t.data_ptr())
                total += t.numel() * t.element_size()
    return total


def measure(name: str, resolution: int, *, device: str = "cpu", scale: str = "full", warmup: int = 1,
            repeats: int = 3, batch_size: int = 1, threads: int | None = None) -> dict:
    """Build contender ``name`` and time it at ``resolution`` (in this process). Returns one result record."""
    dev = torch.device(device)
    if threads:
        torch.set_num_threads(threads)
    contender = contenders()[name]
    options = dict(contender.options)
    if name == "primedepth":
        options.update(fastest_primedepth_options(dev))
    if contender.build is build_primedepth_onnx:
        options["threads"] = threads
    torch.manual_seed(0)
    t0 = time.perf_counter()
    runner = contender.build(scale, dev, **options)
    build_s = time.perf_counter() - t0
    size = runner.input_size(resolution)
    lo, hi = runner.value_range
    images = torch.rand(batch_size, 3, size, size, generator=torch.Generator().manual_seed(0)) * (hi - lo) + lo
    images = images.to(dev)
    _sync(dev)
    if dev.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
    else:
        import gc

        gc.collect()
        _malloc_trim()
        reset = _reset_peak_rss()
        base = _proc_status("VmRSS") if reset else _peak_rss()
    times, cpu_times = [], []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            _sync(dev)
            t, c = time.perf_counter(), time.process_time()
            runner.run(images)
            _sync(dev)
            if i >= warmup:
                times.append((time.perf_counter() - t) / batch_size)
                cpu_times.append((time.process_time() - c) / batch_size)
    peak = torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else _peak_rss()
    return dict(contender=name, label=contender.label, notes=contender.notes, resolution=resolution,
                input_size=size, batch_size=batch_size, device=str(dev), scale=scale, threads=torch.get_num_threads(),
                seconds=statistics.median(times), seconds_all=times, cpu_seconds=statistics.median(cpu_times),
                cpu_seconds_all=cpu_times, warmup=warmup, build_seconds=build_s,
                peak_bytes=int(peak), base_bytes=int(base), activation_bytes=int(max(0, peak - base)),
                weights_bytes=tensor_bytes(runner.modules) if runner.weights_bytes is None else runner.weights_bytes,
                memory_kind="cuda max allocated" if dev.type == "cuda" else "process RSS high-water mark")


def measure_in_subprocess(name: str, resolution: int, timeout: float | None = None, **kwargs) -> dict:
    """``measure`` in a fresh interpreter, so that the peak memory belongs to this contender alone."""
    args = json.dumps(dict(name=name, resolution=resolution, **kwargs))
    try:
        # A fixed mmap threshold: large tensors go back to the OS when freed, so RSS tracks live memory.
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": os.environ.get("MALLOC_MMAP_THRESHOLD_", "4194304")}
        proc = subprocess.run([sys.executable, "-m", "primedepth.benchmark", "--worker", args],
                              capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return dict(contender=name, resolution=resolution, error=f"timed out after {timeout} s")
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return dict(contender=name, resolution=resolution, error=f"exit {proc.returncode}: {' | '.join(tail)}")


def add_marigold_protocol(results: list[dict]) -> list[dict]:
    """Derived rows ``marigold-50x10 (extrapolated)`` from the 1x1 and 2x1 rows of each resolution."""
    steps, ensemble = MARIGOLD_PROTOCOL
    out = [r for r in results if not r.get("derived")]
    measured = {(r["contender"], r["resolution"]): r for r in out if "error" not in r}
    for (name, res), one in list(measured.items()):
        two = measured.get(("marigold-2x1", res))
        if name != "marigold-1x1" or two is None or ("marigold-50x10", res) in measured:
            continue
        per_step = max(0.0, two["seconds"] - one["seconds"])
        seconds = ensemble * (one["seconds"] + (steps - 1) * per_step)
        if "cpu_seconds" in one and "cpu_seconds" in two:
            cpu_step = max(0.0, two["cpu_seconds"] - one["cpu_seconds"])
            one = {**one, "cpu_seconds": ensemble * (one["cpu_seconds"] + (steps - 1) * cpu_step)}
        out.append({**one, "contender": "marigold-50x10", "label": "Marigold, 50 steps x 10 (v1-0), extrapolated",
                    "notes": f"= {ensemble} x (t(1x1) + {steps - 1} x (t(2x1) - t(1x1))); memory of 1x1 (batch 1)",
                    "seconds": seconds, "seconds_all": [], "derived": True, "per_step_seconds": per_step})
    return out


def run_benchmark(contender_names, resolutions, *, device: str = "cpu", scale: str = "full", warmup: int = 1,
                  repeats: int = 3, batch_size: int = 1, threads: int | None = None, subprocesses: bool = True,
                  timeout: float | None = None, log: Callable[[str], None] = print) -> list[dict]:
    results = []
    for res in resolutions:
        for name in contender_names:
            kwargs = dict(device=device, scale=scale, warmup=warmup, repeats=repeats, batch_size=batch_size,
                          threads=threads)
            if subprocesses:
                record = measure_in_subprocess(name, res, timeout=timeout, **kwargs)
            else:
                try:
                    record = measure(name, res, **kwargs)
                except Exception as err:  # a contender that does not fit must not end the run
                    record = dict(contender=name, resolution=res, error=f"{type(err).__name__}: {err}")
            results.append(record)
            if "error" in record:
                log(f"{name} @ {res}: {record['error']}")
            else:
                log(f"{name} @ {res}: {record['seconds']:.3f} s/img, peak {record['peak_bytes'] / 2**20:.0f} MiB, "
                    f"activations {record['activation_bytes'] / 2**20:.0f} MiB")
    return add_marigold_protocol(results)


# ---------------------------------------------------------------------------------------------------- reporting


def _mib(n) -> str:
    return f"{n / 2**20:,.0f}"


def markdown_table(results: list[dict], reference: str = "primedepth") -> str:
    """One table per resolution; ``vs ours`` = contender time / our time (how many times slower than ours),
    activation ratio = contender activations / ours."""
    lines = []
    for res in sorted({r["resolution"] for r in results}):
        rows = [r for r in results if r["resolution"] == res]
        ours = next((r for r in rows if r["contender"] == reference and "error" not in r), None)
        lines += [f"**{res} x {res}**", "",
                  "| contender | s / image | time vs ours | CPU s / image | CPU time vs ours | peak MiB | activation MiB "
                  "| act. vs ours | weights MiB | notes |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for r in rows:
            if "error" in r:
                lines.append(f"| {r['contender']} | — | — | — | — | — | — | — | — | {r['error']} |")
                continue
            ratio = f"{r['seconds'] / ours['seconds']:.2f}x" if ours else "—"
            act = (f"{r['activation_bytes'] / ours['activation_bytes']:.2f}x"
                   if ours and ours["activation_bytes"] else "—")
            cpu = r.get("cpu_seconds")
            cpu_ratio = f"{cpu / ours['cpu_seconds']:.2f}x" if ours and cpu and ours.get("cpu_seconds") else "—"
            cpu = f"{cpu:.3g}" if cpu else "—"
            lines.append(f"| {r['label']} | {r['seconds']:.3g} | {ratio} | {cpu} | {cpu_ratio} | {_mib(r['peak_bytes'])} | "
                         f"{_mib(r['activation_bytes'])} | {act} | {_mib(r['weights_bytes'])} | {r.get('notes', '')} |")
        lines.append("")
    return "\n".join(lines)


def save_json(results: list[dict], path: str | Path, meta: dict | None = None) -> None:
    Path(path).write_text(json.dumps({"meta": meta or {}, "results": results}, indent=2))


def plot(results: list[dict], path: str | Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(12, 4.5))
    names = list(dict.fromkeys(r["contender"] for r in results if "error" not in r))
    for name in names:
        rows = sorted((r for r in results if r["contender"] == name and "error" not in r),
                      key=lambda r: r["resolution"])
        xs = [r["resolution"] for r in rows]
        style = "--" if rows[0].get("derived") else "-"
        ax_t.plot(xs, [r["seconds"] for r in rows], style, marker="o", label=name)
        if not rows[0].get("derived"):
            ax_m.plot(xs, [r["activation_bytes"] / 2**20 for r in rows], marker="o", label=name)
    for ax, ylabel in ((ax_t, "seconds per image (log)"), (ax_m, "activation memory, MiB (log)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("image side (pixels)")
        ax.set_ylabel(ylabel)
        ax.set_xticks(sorted({r["resolution"] for r in results}))
        ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.grid(True, which="both", alpha=0.3)
    ax_t.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def machine_description(device: str) -> dict:
    import platform

    meta = dict(device=device, torch=torch.__version__, python=platform.python_version(), cpus=os.cpu_count(),
                threads=torch.get_num_threads(), platform=platform.platform())
    try:
        meta["cpu"] = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                           if line.startswith("model name"))
        meta["load_average_at_start"] = os.getloadavg()
    except (OSError, StopIteration):
        pass
    if device.startswith("cuda") and torch.cuda.is_available():
        meta["gpu"] = torch.cuda.get_device_name()
    return meta


PRECISION_SPLITS = {
    "fp32": dict(),
    "fp32 + channels_last": dict(channels_last=True),
    "fp32 + low_memory": dict(channels_last=True, low_memory=True),
    "bf16 UNet+VAE, fp32 labeller": dict(frozen_dtype=torch.bfloat16),
    "bf16 UNet+VAE, bf16 labeller": dict(frozen_dtype=torch.bfloat16, labeller_dtype=torch.bfloat16),
    "fp16 UNet+VAE, fp32 labeller": dict(frozen_dtype=torch.float16),
    # diagnostics: weights rounded to half precision and back, everything computed in fp32 (the error floor of
    # any configuration that stores the weights in that format)
    "bf16-rounded weights, fp32 compute": dict(round_weights=torch.bfloat16),
    "fp16-rounded weights, fp32 compute": dict(round_weights=torch.float16),
}


def reference_errors(reference_dir: str | Path, splits: dict | None = None) -> dict[str, dict[str, float]]:
    """Relative error (max|diff| / max|ref|) of the pipeline's path against the official reference vectors, per
    precision split: worst over depth maps, segmentation logits, refiner outputs and fused features."""
    from safetensors.torch import load_file

    from .conversion.verification import INPUT_NAMES, _case_names, build_official_model, relative_error
    from .pipelines.pipeline import PrimeDepthPipeline

    reference_dir = Path(reference_dir)
    vectors = load_file(str(reference_dir / "official_tiny_io.safetensors"))
    report = {}
    for name, options in (splits or PRECISION_SPLITS).items():
        options = dict(options)
        low_memory = options.pop("low_memory", False)
        round_weights = options.pop("round_weights", None)
        model = build_official_model(reference_dir / "official_tiny_config.json", reference_dir / "official_tiny.ckpt")
        text_encoder, tokenizer = _stub_text_encoder(model.unet.config.cross_attention_dim)
        pipe = PrimeDepthPipeline(model.vae, model.unet, text_encoder, tokenizer, model.labeller, model.noise)
        if round_weights is not None:
            with torch.no_grad():
                for module in (pipe.vae, pipe.unet, pipe.labeller):
                    for p in module.parameters():
                        p.copy_(p.to(round_weights).float())
        pipe.optimize(**options)
        errors = {}
        for case in _case_names(vectors):
            inputs = {n: vectors[f"{case}.{n}"] for n in INPUT_NAMES}
            out = pipe.predict_with_noise(inputs["image"], inputs["context"], inputs["noise_posterior"],
                                          inputs["noise_t"], segmentation=True, low_memory=low_memory)
            for key in ("depth", "segmentation"):
                errors[f"{case}.{key}"] = relative_error(getattr(out, key).float(), vectors[f"{case}.{key}"])
        report[name] = {"worst": max(errors.values()), **errors}
    return report


def _worker_main(argv: list[str]) -> None:
    args = json.loads(argv[argv.index("--worker") + 1])
    print("RESULT " + json.dumps(measure(args.pop("name"), args.pop("resolution"), **args)), flush=True)


if __name__ == "__main__":
    if "--worker" in sys.argv:
        _worker_main(sys.argv)
    else:
        from .cli.bench_cmd import command

        command()
