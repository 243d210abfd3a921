"""Convert an official PrimeDepth checkpoint into a folder that ``PrimeDepthPipeline.from_pretrained`` loads."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from transformers import CLIPTextConfig

from ..models.frozen.text_encoder import DEFAULT_TEXT_ENCODER, load_clip_tokenizer, load_text_tower
from ..utils.atomic import atomic_dir
from ..utils.hub import cache_only
from ..utils.quiet import no_library_progress_bars
from .config_inference import infer_official_config
from .loading import MODEL_INDEX
from .model_index import model_index, write_model_index
from .official_checkpoint import load_official_checkpoint
from .official_config import load_official_config
from .official_parts import build_official_parts, check_text_width


@dataclass
class ConversionReport:
    out_dir: Path
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _save_or_defer(
    report: ConversionReport, what: str, source: str, save: Callable[[Path], object], folder: Path
) -> str:
    """What model_index.json names for a hub part: ``folder``'s name once ``save`` has fetched ``source`` into
    it, else ``source`` itself, which ``from_pretrained`` fetches when the model is first used."""
    try:
        save(folder)
        return folder.name
    except OSError:
        report.notes.append(
            f"{what} {source!r} not available now; it will be loaded from there when the model is first used"
        )
        return source


def convert_official_checkpoint(
    checkpoint: str | Path,
    out_dir: str | Path,
    config_path: str | Path | None = None,
    trust_pickle: bool = False,
    text_encoder: str = DEFAULT_TEXT_ENCODER,
    tokenizer: str | None = None,
    cache_dir: str | None = None,
    local_files_only: bool = False,
    source: str | None = None,
) -> ConversionReport:
    """Write vae/, unet/, labeller/, text_encoder/ + tokenizer/ (when obtainable) and model_index.json.

    The configuration is read from ``config_path`` (official-style JSON) or, without one, inferred from the
    checkpoint's tensor shapes. ``source`` is recorded as where the checkpoint came from (default: its file name).

    The text tower comes from the checkpoint when it holds one (``cond_stage_model.model.*``), otherwise from
    ``text_encoder`` (hub id or folder); the tokenizer from ``tokenizer`` (default: ``text_encoder``). When they
    cannot be fetched now, model_index.json names them and ``from_pretrained`` fetches them later.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / MODEL_INDEX).is_file():
        raise FileExistsError(f"{out_dir}: exists and is not a PrimeDepth model folder; choose an empty or new folder")
    state = load_official_checkpoint(checkpoint, trust_pickle=trust_pickle)
    config = (
        load_official_config(config_path)
        if config_path is not None
        else infer_official_config({k: v.shape for k, v in state.items() if hasattr(v, "shape")})
    )
    parts = build_official_parts(config, state, text_encoder=True, origin=str(checkpoint))
    converted = parts.converted
    if parts.problems:
        raise ValueError(
            f"{checkpoint}: does not match the config ({len(parts.problems)} problems):\n  "
            + "\n  ".join(parts.problems[:20])
        )
    report = ConversionReport(
        out_dir, {"unet": len(converted.unet), "vae": len(converted.vae), "labeller": len(converted.labeller)}
    )
    if config_path is None:
        report.notes.append(
            "configuration inferred from the tensor shapes (UNet {model_channels} channels x "
            "{channel_mult}, {num_head_channels}-wide heads, context {context_dim})".format(**config["unet"])
        )
    if not any(k.startswith("decoder.") for k in converted.vae):
        report.notes.append(
            "the checkpoint has no VAE decoder (PrimeDepth never uses it); it is left at its initialisation"
        )

    if parts.text_encoder is not None:
        report.counts["text_encoder"] = len(converted.text_encoder)
    context_width = config["unet"]["context_dim"]
    tokenizer_source = tokenizer or text_encoder
    hub = dict(cache_dir=cache_dir, local_files_only=cache_only(local_files_only, text_encoder, tokenizer_source))

    def save_hub_text_encoder(folder: Path) -> None:
        text_config = CLIPTextConfig.from_pretrained(text_encoder, **hub)
        check_text_width(f"text encoder {text_encoder!r}", text_config.hidden_size, context_width)
        load_text_tower(text_encoder, **hub).save_pretrained(folder)

    with atomic_dir(out_dir) as tmp:  # a normal folder (umask respected), renamed into place when complete
        with no_library_progress_bars():
            parts.unet.save_pretrained(tmp / "unet")
            parts.vae.save_pretrained(tmp / "vae")
            parts.labeller.save_pretrained(tmp / "labeller")
        settings = {**parts.noise, "default_caption": "auto", "source_checkpoint": source or Path(checkpoint).name}
        if parts.text_encoder is not None:
            with no_library_progress_bars():
                parts.text_encoder.save_pretrained(tmp / "text_encoder")
            text_source = "text_encoder"
        else:
            text_source = _save_or_defer(
                report, "text encoder", text_encoder, save_hub_text_encoder, tmp / "text_encoder"
            )
        tokenizer_at = _save_or_defer(
            report,
            "tokenizer",
            tokenizer_source,
            lambda folder: load_clip_tokenizer(tokenizer_source, **hub).save_pretrained(folder),
            tmp / "tokenizer",
        )
        index = model_index(
            settings,
            labeller_class=type(parts.labeller).__name__,
            text_encoder=text_source,
            tokenizer=tokenizer_at,
        )
        write_model_index(tmp, index)
    return report
