"""ONNX export of PrimeDepth's single step, and an onnxruntime session around the exported graph.

The graph is the pipeline's noise-free step exactly as ``PrimeDepthPipeline.predict_with_noise`` computes it with
``noise="none"``: VAE encoder (posterior mean, no t-noise) -> frozen UNet at t = 1 with the pooled attention maps
recorded -> labeller -> depth head, the depth channels averaged. Its caption embedding is fixed at export time (the
text tower and BLIP-2 are not part of the graph). Input ``images``: (1, 3, H, W) float32 in [-1, 1] with H and W
multiples of 8 (the pipeline's processing sizes, ``PrimeDepthImageProcessor``); output ``inverse_depth``:
(1, H, W) float32, affine-invariant. Height and width are dynamic, the batch is one image (the TorchScript
exporter freezes the traced batch size into the attention reshapes; ``run_onnx`` loops over a batch). An fp16
export keeps fp32 input and output and computes inside in fp16 (GroupNorms in fp32, as the pipeline does).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

from ..utils.atomic import publish, scratch_dir

INPUT_NAME, OUTPUT_NAME = "images", "inverse_depth"
MIN_SIDE = 64  # the smallest processing side (one latent pixel at the UNet's deepest level)
DEFAULT_OPSET = 17
LARGEST_SINGLE_FILE = 2**31 - 2**26  # protobuf's 2 GB limit, with room for the graph itself


class SingleStepDepth(torch.nn.Module):
    """The exported computation: ``images`` (B, 3, H, W) in [-1, 1] -> inverse depth (B, H, W), float32."""

    def __init__(self, pipe, caption: str = ""):
        super().__init__()
        self.pipe = pipe
        # registered so that export sees the weights as parameters of this module
        self.vae, self.unet, self.labeller = pipe.vae, pipe.unet, pipe.labeller
        self.register_buffer("context", pipe._encode_prompts([caption]).to(pipe.dtype))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        context = self.context.expand(images.shape[0], -1, -1)
        out = self.pipe.predict_with_noise(images, context, None, None)
        return out.depth.float().mean(dim=1)


def export_caption(pipe, caption: str | None) -> str:
    """The fixed caption of an export: ``caption`` if given, else the model's default (``"none"`` -> empty).
    ``"auto"`` (BLIP-2 per image) cannot be part of a graph."""
    caption = pipe.settings.get("default_caption", "none") if caption is None else caption
    if caption == "auto":
        raise ValueError("caption 'auto' (BLIP-2 per image) cannot be exported; pass a fixed text or 'none'")
    return "" if caption == "none" else caption


def export_onnx(
    pipe, path: str | Path, *, dtype: torch.dtype = torch.float32, caption: str | None = None, opset: int | None = None
) -> Path:
    """Write ``pipe``'s single step to ``path`` (``dtype``: torch.float32 or torch.float16; the pipeline is cast to
    it in place). Models over 2 GB keep their weights in ``<path>.data`` beside the graph. Both files appear
    complete under their final names or not at all (graph last)."""
    path = Path(path)
    if dtype not in (torch.float32, torch.float16):
        raise ValueError(f"ONNX export supports float32 and float16, got {dtype}")
    text = export_caption(pipe, caption)
    pipe.optimize(frozen_dtype=dtype, labeller_dtype=dtype, channels_last=False)
    model = SingleStepDepth(pipe, text).eval()
    sample = torch.zeros(1, 3, MIN_SIDE, MIN_SIDE + 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with scratch_dir(path) as tmp:
        traced = tmp / "traced.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # shape branches fixed by design
            warnings.filterwarnings("ignore", message="Constant folding")
            warnings.filterwarnings("ignore", category=DeprecationWarning, module="torch.onnx")
            torch.onnx.export(
                model,
                (sample,),
                str(traced),
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {2: "height", 3: "width"}, OUTPUT_NAME: {1: "height", 2: "width"}},
                opset_version=opset or DEFAULT_OPSET,
                dynamo=False,
                do_constant_folding=True,
            )
        _gather(traced, tmp / path.name)
        data = tmp / (path.name + ".data")
        if data.exists():
            publish(data, path.with_name(data.name))
        publish(tmp / path.name, path)
    return path


def _gather(traced: Path, staged: Path) -> None:
    """Write the exported graph ``traced`` as ``staged``: one file, or, for models over protobuf's 2 GB limit (the
    exporter then writes one file per tensor), the graph plus one ``NAME.data`` file next to it. The size is read
    without loading the tensors: a message over 2 GB cannot even be measured."""
    large = _has_external_data(onnx.load(str(traced), load_external_data=False))
    proto = onnx.load(str(traced))
    if not large and proto.ByteSize() > LARGEST_SINGLE_FILE:
        large = True
    onnx.save_model(
        proto, str(staged), save_as_external_data=large, all_tensors_to_one_file=True, location=staged.name + ".data"
    )


def _has_external_data(proto) -> bool:
    return any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)


def onnx_session(path: str | Path, threads: int | None = None):
    """An onnxruntime CPU session for an exported file (``threads``: intra-op threads, default onnxruntime's)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_onnx(session, images: torch.Tensor | np.ndarray) -> np.ndarray:
    """Inverse depth (B, H, W) float32 for ``images`` (B, 3, H, W) in [-1, 1], one image per session call."""
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().float().numpy()
    images = np.ascontiguousarray(images, dtype=np.float32)
    return np.concatenate([session.run([OUTPUT_NAME], {INPUT_NAME: image[None]})[0] for image in images])


def check_export(
    pipe, path: str | Path, size: tuple[int, int] = (MIN_SIDE, MIN_SIDE + 16), seed: int = 0, caption: str | None = None
) -> float:
    """Relative difference (max|onnxruntime − PyTorch| / max|PyTorch|) of the exported file against ``pipe`` (in
    the dtype it was exported in) on a random image of ``size``."""
    images = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    with torch.no_grad():
        expected = SingleStepDepth(pipe, export_caption(pipe, caption))(images).numpy()
    got = run_onnx(onnx_session(path), images)
    return float(np.abs(got - expected).max() / np.abs(expected).max())
