"""Precision configurations: native-bf16 detection, what ``auto`` resolves to, what the metadata reports, and the
accuracy bound of the ``auto`` choice on trained weights (PrimeDepth-mini, a subset of both held-out sets)."""

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from primedepth import PrimeDepthPipeline
from primedepth.cli import main
from primedepth.miniature.precision_study import precision_rows
from primedepth.pipelines import precision

INTEL_FLAGS = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n"
AMX_FLAGS = "flags\t\t: fpu avx512f amx_tile amx_bf16 amx_int8\n"
OLD_X86_FLAGS = "flags\t\t: fpu sse2 avx2 fma avx512f avx512_vnni\n"
ARM_FEATURES = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n"
OLD_ARM_FEATURES = "Features\t: fp asimd evtstrm aes crc32\n"


@pytest.mark.parametrize(
    "cpuinfo,native",
    [
        (INTEL_FLAGS, True),
        (AMX_FLAGS, True),
        (ARM_FEATURES, True),
        (OLD_X86_FLAGS, False),
        (OLD_ARM_FEATURES, False),
        ("", False),
    ],
)
def test_native_bf16_detection_from_cpu_flags(cpuinfo, native):
    assert precision.cpu_has_native_bf16(cpuinfo) is native


def test_auto_is_the_half_precision_choice_only_where_bf16_is_native(monkeypatch):
    monkeypatch.delenv("PRIMEDEPTH_AUTO_PRECISION")
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda cpuinfo=None: True)
    monkeypatch.setattr(precision, "cpu_bf16_is_faster", lambda: True)
    assert precision.resolve_precision("auto", "cpu").name == precision.AUTO_HALF_PRECISION == "bf16"
    monkeypatch.setattr(precision, "cpu_bf16_is_faster", lambda: False)  # native but slower (no AMX): fp32
    assert precision.resolve_precision("auto", "cpu").name == "fp32"
    monkeypatch.setattr(precision, "cpu_bf16_is_faster", lambda: True)
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda cpuinfo=None: False)
    assert precision.resolve_precision("auto", "cpu").name == "fp32"
    assert precision.resolve_precision("auto", "mps").name == "fp32"
    assert precision.resolve_precision("fp16-frozen", "cpu").frozen_dtype == torch.float16
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        precision.resolve_precision("fp8", "cpu")
    monkeypatch.setenv("PRIMEDEPTH_AUTO_PRECISION", "bf16-frozen")
    assert precision.resolve_precision("auto", "cpu").name == "bf16-frozen"


def test_predict_offers_exactly_the_precision_choices():
    from primedepth.cli.predict_cmd import command

    [dtype] = [p for p in command.params if p.name == "dtype"]
    assert tuple(dtype.type.choices) == precision.PRECISION_CHOICES == ("auto", *precision.PRECISIONS)
    assert precision.PRECISIONS["bf16-frozen"].frozen_dtype == torch.bfloat16
    assert precision.PRECISIONS["bf16-frozen"].labeller_dtype == torch.float32 and precision.PRECISIONS["tf32"].tf32


def test_set_precision_casts_the_parts_and_the_metadata_says_what_ran(rgb_image):
    pipe = PrimeDepthPipeline.from_pretrained("tiny-random", device="cpu")
    fp32 = pipe(rgb_image, noise="none")
    assert fp32.metadata["precision"] == "fp32"
    pipe.set_precision("bf16-frozen")
    assert (pipe.dtype, pipe.labeller_dtype) == (torch.bfloat16, torch.float32)
    norms = [m for m in pipe.unet.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert norms and all(m.weight.dtype == torch.float32 for m in norms)  # GroupNorms stay fp32
    mixed = pipe(rgb_image, noise="none")
    assert mixed.metadata["precision"] == "bf16-frozen" and mixed.metadata["dtype"] == "torch.bfloat16"
    a, b = fp32.inverse_depth[0].ravel(), mixed.inverse_depth[0].ravel()
    assert np.abs(a - b).max() > 0 and np.corrcoef(a, b)[0, 1] > 0.8  # ran in bf16, same computation
    pipe.optimize(frozen_dtype=torch.float16, labeller_dtype=torch.bfloat16)
    assert precision.precision_of(pipe) == "float16 frozen + bfloat16 labeller"


def test_predict_reports_the_precision_that_ran(tmp_path, rgb_image):
    from PIL import Image

    Image.fromarray(rgb_image).save(tmp_path / "a.png")
    result = CliRunner().invoke(
        main,
        [
            "predict",
            str(tmp_path / "a.png"),
            "-o",
            str(tmp_path / "out"),
            "--model",
            "tiny-random",
            "--device",
            "cpu",
            "--format",
            "npy",
            "--dtype",
            "fp32",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "(fp32, --dtype fp32)" in result.output
    auto = precision.resolve_precision("auto", "cpu").name
    result = CliRunner().invoke(
        main,
        [
            "predict",
            str(tmp_path / "a.png"),
            "-o",
            str(tmp_path / "auto"),
            "--model",
            "tiny-random",
            "--device",
            "cpu",
            "--format",
            "npy",
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"({auto}, --dtype auto)" in result.output


def test_auto_choice_stays_within_the_bound_of_fp32_on_both_held_out_sets():
    """The half-precision configuration ``auto`` picks on native-bf16 hardware, on 24 scenes of each held-out set:
    |Δδ1| <= 0.2 points and |ΔAbsRel| <= 0.002 against fp32 (the full 200-scene table is in docs/performance.md)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rows = precision_rows(precisions=[precision.AUTO_HALF_PRECISION], seeds=(7, 11), scenes=24, batch_size=24)
    finally:
        torch.set_num_threads(threads)
    half = [r for r in rows if r["precision"] == precision.AUTO_HALF_PRECISION]
    assert [r["seed"] for r in half] == [7, 11]
    for r in half:
        assert abs(r["delta1_change"]) <= precision.DELTA1_BOUND, r
        assert abs(r["abs_rel_change"]) <= precision.ABS_REL_BOUND, r
        assert 1e-3 < r["max_relative_difference"] < 0.3, r  # bf16 really ran; the output moved, the metrics did not
    fp32 = [r for r in rows if r["precision"] == "fp32"]
    assert all(r["delta1"] > 0.85 and r["abs_rel"] < 0.12 for r in fp32)  # the trained model, not noise


def _tf32_flags() -> tuple:
    return (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.get_float32_matmul_precision(),
    )


@pytest.fixture
def caller_allows_tf32():
    """The caller's process allows TF32 everywhere (PyTorch's cuDNN default, plus TF32 matmuls); restored after."""
    before = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    torch.set_float32_matmul_precision("high")
    torch.backends.cudnn.allow_tf32 = True
    yield (True, True, "high")
    torch.set_float32_matmul_precision(before[0])
    torch.backends.cudnn.allow_tf32 = before[1]


@pytest.mark.parametrize("name,during", [("fp32", (False, False, "highest")), ("tf32", (True, True, "high"))])
def test_forward_runs_under_the_configurations_tf32_policy_and_restores_the_callers(caller_allows_tf32, name, during):
    """fp32 means IEEE fp32: TF32 is off while the UNet, the labeller and the text tower run, whatever the caller set;
    ``tf32`` allows it. The caller's settings are back after the call, and after a call that raised."""
    pipe = PrimeDepthPipeline.tiny_random().set_precision(name)
    seen = {}

    def record(part):
        def hook(module, args):
            seen.setdefault(part, _tf32_flags())

        return hook

    parts = {"unet": pipe.unet.conv_in, "labeller": pipe.labeller, "text_encoder": pipe.text_encoder}
    for part, module in parts.items():
        module.register_forward_pre_hook(record(part))
    out = pipe(np.zeros((24, 32, 3), np.uint8), noise="none", caption="a room")
    assert seen == {"unet": during, "labeller": during, "text_encoder": during}
    assert out.metadata["precision"] == name
    assert _tf32_flags() == caller_allows_tf32

    seen.clear()
    pipe.preimage(np.zeros((24, 32, 3), np.uint8), caption="another room")
    assert seen == {"unet": during, "text_encoder": during}
    assert _tf32_flags() == caller_allows_tf32

    def fail(module, args):
        assert _tf32_flags() == during
        raise RuntimeError("out of memory")

    pipe.unet.conv_in.register_forward_pre_hook(fail)
    with pytest.raises(RuntimeError, match="out of memory"):
        pipe(np.zeros((24, 32, 3), np.uint8), noise="none")
    assert _tf32_flags() == caller_allows_tf32


def test_fp32_arithmetic_restores_the_per_backend_settings_exactly():
    """Also a caller's per-backend ``fp32_precision`` settings (PyTorch >= 2.9) come back unchanged, and fp32 pins the
    matmul and convolution leaves to IEEE even under a global ``"tf32"``."""
    backends = torch.backends
    if not hasattr(backends.cudnn.conv, "fp32_precision"):
        pytest.skip("this PyTorch has no per-backend fp32_precision settings")
    leaves = (backends.cuda.matmul, backends.cudnn.conv, backends.cudnn.rnn, backends.mkldnn.matmul)
    nodes = (backends, backends.cudnn, backends.mkldnn, *leaves)
    before = [n.fp32_precision for n in nodes]
    try:
        backends.fp32_precision = "tf32"
        backends.mkldnn.matmul.fp32_precision = "bf16"
        state = [n.fp32_precision for n in nodes]
        for allow_tf32, expected in ((False, "ieee"), (True, "tf32")):
            with precision.fp32_arithmetic(allow_tf32):
                assert [n.fp32_precision for n in leaves[:3]] == [expected] * 3
            assert [n.fp32_precision for n in nodes] == state
    finally:
        for node, value in zip(nodes, before):
            node.fp32_precision = value
