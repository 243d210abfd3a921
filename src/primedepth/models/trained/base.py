"""What every labeller shares: its hyper-parameters, the layout they give, the refiner's blocks, tail and heads, and
the forward around a class's own fusion (``refine``).

The hyper-parameters are declared once, as the fields of ``LabellerArguments`` (the first block describes the frozen
UNet in the official names). A labeller class states only the arguments it adds, as keyword-only parameters of its
``__init__``, and decorates it with ``register_to_config`` over ``shared_arguments``::

    @register_to_config
    @shared_arguments
    def __init__(self, arguments: LabellerArguments, *, block_stage: int = 1): ...

``shared_arguments`` gives that ``__init__`` the flat signature ``(self, model_channels=320, ..., latent_channels=0,
block_stage=1)`` as its ``__signature__``: diffusers reads a ``ConfigMixin``'s config keys from
``inspect.signature`` of ``__init__`` (``register_to_config`` to record them, ``extract_init_dict`` to pick them out
of a ``config.json`` in ``from_config``/``from_pretrained``), and ``inspect.signature`` returns a function's
``__signature__`` when it has one (PEP 362). So ``config.json`` keeps one flat key per argument, as before.
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field, fields

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from ..banded import release_freed_memory
from ..group_norms import group_norm
from ..layout import FusionStep, UNetLayout, fusion_layout, unet_layout
from ..preimage import Preimage
from .heads import VAEDecoderHead
from .layers import SpatialTransformer, TimestepResBlock, Upsample2x


@dataclass(frozen=True)
class LabellerArguments:
    """The constructor arguments (and ``config.json`` keys) all labellers share."""

    model_channels: int = 320
    channel_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (4, 2, 1)
    num_head_channels: int = 64
    context_dim: int = 1024
    use_linear_in_transformer: bool = True
    refiner_model_ratio: float = 0.5
    use_self_attn_maps: bool = True
    use_cross_attn_maps: bool = True
    use_feature_maps: bool = True
    n_sa_maps: int = 64
    n_ca_maps: int = 77
    scale_input_features_with_model: bool = True
    channels2predictor: int = 512
    depth_channels: int = 3
    segmentation_classes: int = 150
    head_ch: int = 128
    head_ch_mult: tuple[int, ...] = (1, 2, 4, 4)
    head_num_res_blocks: int = 2
    latent_channels: int = 0  # > 0: the no-preimage baseline (``PrimeDepthLabeller`` only)

    def unet_layout(self) -> UNetLayout:
        return unet_layout(
            self.model_channels,
            list(self.channel_mult),
            self.num_res_blocks,
            list(self.attention_resolutions),
            self.num_head_channels,
        )

    def fusion_layout(self, unet: UNetLayout) -> list[FusionStep]:
        """The full model's fusion steps (one per decoder block)."""
        return fusion_layout(
            unet,
            model_channels=self.model_channels,
            channel_mult=list(self.channel_mult),
            num_res_blocks=self.num_res_blocks,
            attention_resolutions=list(self.attention_resolutions),
            num_head_channels=self.num_head_channels,
            refiner_model_ratio=self.refiner_model_ratio,
            use_self_attn_maps=self.use_self_attn_maps,
            use_cross_attn_maps=self.use_cross_attn_maps,
            use_feature_maps=self.use_feature_maps,
            n_sa_maps=self.n_sa_maps,
            n_ca_maps=self.n_ca_maps,
            scale_input_features_with_model=self.scale_input_features_with_model,
        )


def shared_arguments(init):
    """Decorate ``__init__(self, arguments: LabellerArguments, *, <own arguments>)`` (under ``register_to_config``):
    callers pass the ``LabellerArguments`` fields and the own arguments flat, as one signature (see the module
    docstring), and ``init`` receives the former as one ``LabellerArguments``."""
    own = [p for p in inspect.signature(init).parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    shared = [inspect.Parameter(f.name, kind, default=f.default, annotation=f.type) for f in fields(LabellerArguments)]
    signature = inspect.Signature(
        [inspect.Parameter("self", kind), *shared, *(p.replace(kind=kind) for p in own)],
        return_annotation=None,
    )

    @functools.wraps(init)
    def flat_init(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        values = dict(bound.arguments)
        del values["self"]
        arguments = LabellerArguments(**{p.name: values.pop(p.name) for p in shared})
        init(self, arguments, **values)

    flat_init.__signature__ = signature
    return flat_init


class RefinerBlock(nn.Module):
    def __init__(self, step: FusionStep, emb_channels: int, context_dim: int, use_linear: bool = True):
        super().__init__()
        self.resnet = TimestepResBlock(step.refiner_in, step.refiner_out, emb_channels)
        self.attention = (
            SpatialTransformer(step.refiner_out, step.refiner_heads, step.refiner_head_dim, context_dim, use_linear)
            if step.refiner_heads
            else None
        )
        self.upsample = Upsample2x(step.refiner_out) if step.upsample else None

    def forward(self, x, emb, context, output_size):
        x = self.resnet(x, emb)
        if self.attention is not None:
            x = self.attention(x, context)
        if self.upsample is not None:
            x = self.upsample(x, output_size)
        return x


@dataclass
class LabellerOutput:
    depth: torch.Tensor | None = None  # (B, depth_channels, 8h, 8w)
    segmentation: torch.Tensor | None = None  # (B, classes, 8h, 8w) logits
    refiner_out: torch.Tensor | None = None
    merged: list[torch.Tensor | None] = field(default_factory=list)


class Labeller(ModelMixin, ConfigMixin):
    """Base of the labellers: a subclass builds its fusion modules, then ``build_refiner`` (so that parameters are
    created, and seeded weights drawn, in the same order as always), and implements ``refine``."""

    config_name = "config.json"

    def build_refiner(self, arguments: LabellerArguments, steps: list[FusionStep]) -> None:
        """Refiner blocks for ``steps`` (kept as ``self.steps``), the refiner's output norm and conv, and the heads."""
        a = arguments
        self.steps = steps
        emb_channels = 4 * a.model_channels
        self.refiner = nn.ModuleList(
            RefinerBlock(s, emb_channels, a.context_dim, a.use_linear_in_transformer) for s in steps
        )
        last = steps[-1].refiner_out
        self.refiner_norm_out = group_norm(last)
        self.refiner_conv_out = nn.Conv2d(last, a.channels2predictor, 3, padding=1)
        head_kwargs = dict(ch=a.head_ch, ch_mult=tuple(a.head_ch_mult), num_res_blocks=a.head_num_res_blocks)
        self.depth_head = VAEDecoderHead(a.channels2predictor, a.depth_channels, **head_kwargs)
        self.segmentation_head = (
            VAEDecoderHead(a.channels2predictor, a.segmentation_classes, **head_kwargs)
            if a.segmentation_classes
            else None
        )

    def preimage_request(self) -> dict:
        """Keyword arguments for ``FrozenStableDiffusion.extract``/``preimage``: the preimage ``source`` this
        labeller reads (the UNet's, or the VAE latent for the no-preimage baseline) and, from the UNet, exactly
        the maps it fuses."""
        cfg = self.config
        if cfg.latent_channels:
            return dict(source="latent")
        return dict(
            source="unet",
            self_maps=cfg.use_self_attn_maps,
            cross_maps=cfg.use_cross_attn_maps,
            regions_per_side=int(round(cfg.n_sa_maps**0.5)),
            token_groups=cfg.n_ca_maps,
        )

    def conditioning(self, preimage: Preimage) -> tuple[torch.Tensor, torch.Tensor, list[tuple[int, int]]]:
        """``emb`` and ``context`` in the labeller's dtype (the preimage may come from a half-precision frozen UNet),
        and the size of every decoder block's input (refiner block ``i`` upsamples to size ``i + 1``)."""
        dtype = self.refiner_conv_out.weight.dtype
        sizes = [tuple(f.shape[-2:]) for f in preimage.features]
        return preimage.emb.to(dtype), preimage.context.to(dtype), sizes

    def run_refiner_block(self, j: int, h, emb, context, sizes) -> torch.Tensor:
        """Refiner block ``j``, which sits at decoder block ``i = first + j`` and upsamples to block ``i + 1``."""
        i = len(sizes) - len(self.refiner) + j
        return self.refiner[j](h, emb, context, sizes[i + 1] if i + 1 < len(sizes) else None)

    def refine(self, preimage: Preimage, merged: list | None, consume_preimage: bool) -> torch.Tensor:
        """The fused preimage through the refiner blocks (appending each fused input to ``merged`` when given)."""
        raise NotImplementedError

    def forward(
        self,
        preimage: Preimage,
        segmentation: bool = False,
        return_intermediates: bool = False,
        low_memory: bool = False,
        *,
        consume_preimage: bool = False,
    ) -> LabellerOutput:
        """``low_memory``: run the heads in row bands (``VAEDecoderHead(low_memory=True)``).
        ``consume_preimage``: release each preimage block as soon as it is fused, which empties the caller's
        ``preimage`` (its features and maps become None); together with ``low_memory`` for the lowest peak."""
        out = LabellerOutput()
        h = self.refine(preimage, out.merged if return_intermediates else None, consume_preimage)
        h = self.refiner_conv_out(F.silu(self.refiner_norm_out(h)))
        if return_intermediates:
            out.refiner_out = h
        if low_memory or consume_preimage:
            release_freed_memory(h.device)
        out.depth = self.depth_head(h, low_memory=low_memory)
        if segmentation:
            if self.segmentation_head is None:
                raise ValueError("this model has no segmentation head (segmentation_classes=0)")
            out.segmentation = self.segmentation_head(h, low_memory=low_memory)
        return out
