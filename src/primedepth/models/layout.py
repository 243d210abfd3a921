"""Channel bookkeeping of the frozen UNet and of the fusion/refiner built around it.

Everything here is derived from the SD UNet hyper-parameters in the official vocabulary (``model_channels``,
``channel_mult``, ...) with the same arithmetic as the authors' ``PrimeDepthLabeller``/``Refiner`` constructors, so
that any official-style config yields exactly the official parameter shapes. Indices follow the official code:
encoder blocks 0..11 (``input_blocks``), decoder blocks 0..11 (``output_blocks``); fusion step ``i`` feeds
refiner block ``i`` and mirrors encoder block ``11 - i``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .group_norms import largest_divisor_at_most


@dataclass(frozen=True)
class UNetBlock:
    """One encoder or decoder block of the frozen UNet."""

    in_channels: int
    out_channels: int
    level: int
    heads: int  # attention heads of its transformer, 0 when it has none
    upsample: bool = False


@dataclass(frozen=True)
class UNetLayout:
    encoder: list[UNetBlock]
    mid_heads: int
    decoder: list[UNetBlock]


def unet_layout(
    model_channels: int,
    channel_mult: list[int],
    num_res_blocks: int,
    attention_resolutions: list[int],
    num_head_channels: int,
) -> UNetLayout:
    """Blocks of the SD 2.x UNet (ldm ``UNetModel`` with spatial transformers, ``num_head_channels`` set)."""
    if num_head_channels <= 0:
        raise ValueError("only configs with num_head_channels > 0 (SD 2.x style) are supported")
    encoder = [UNetBlock(0, model_channels, 0, 0)]
    skip_channels = [model_channels]
    ch, ds = model_channels, 1
    for level, mult in enumerate(channel_mult):
        for _ in range(num_res_blocks):
            out = mult * model_channels
            heads = out // num_head_channels if ds in attention_resolutions else 0
            encoder.append(UNetBlock(ch, out, level, heads))
            ch = out
            skip_channels.append(ch)
        if level != len(channel_mult) - 1:
            encoder.append(UNetBlock(ch, ch, level + 1, 0))
            skip_channels.append(ch)
            ds *= 2
    mid_heads = ch // num_head_channels
    decoder = []
    for level in reversed(range(len(channel_mult))):
        for i in range(num_res_blocks + 1):
            out = model_channels * channel_mult[level]
            heads = out // num_head_channels if ds in attention_resolutions else 0
            upsample = level > 0 and i == num_res_blocks
            decoder.append(UNetBlock(ch + skip_channels.pop(), out, level, heads, upsample))
            ch = out
        if level > 0:
            ds //= 2
    return UNetLayout(encoder, mid_heads, decoder)


@dataclass(frozen=True)
class FusionStep:
    """Channel plan of fusion step ``i`` and of refiner block ``i``.

    Step ``i`` fuses the attention maps of the previous decoder block (the middle block for step 0) and those of
    the mirrored encoder block. A conv is absent when its channel count is 0.
    """

    feature_in: int
    feature_out: int
    attention_in: int
    attention_out: int
    merge_in: int
    merge_out: int
    refiner_in: int
    refiner_out: int
    refiner_heads: int
    refiner_head_dim: int
    upsample: bool


def fusion_layout(
    unet: UNetLayout,
    *,
    model_channels: int,
    channel_mult: list[int],
    num_res_blocks: int,
    attention_resolutions: list[int],
    num_head_channels: int,
    refiner_model_ratio: float,
    use_self_attn_maps: bool,
    use_cross_attn_maps: bool,
    use_feature_maps: bool,
    n_sa_maps: int,
    n_ca_maps: int,
    scale_input_features_with_model: bool,
) -> list[FusionStep]:
    """The official labeller's channel arithmetic (``infusion2refiner='cat'``), one entry per decoder block."""
    maps_per_head = n_ca_maps * use_cross_attn_maps + n_sa_maps * use_self_attn_maps
    ratio = refiner_model_ratio
    factor = 1.0 if scale_input_features_with_model else 1.0 / ratio
    rc = max(1, int(model_channels * ratio))

    refiner_skips = [rc]
    for level, mult in enumerate(channel_mult):
        refiner_skips += [mult * rc] * num_res_blocks
        if level != len(channel_mult) - 1:
            refiner_skips.append(mult * rc)
    ch = channel_mult[-1] * rc

    steps = []
    mid_heads = unet.mid_heads
    ds = 2 ** (len(channel_mult) - 1)
    for i, base in enumerate(unet.decoder):
        enc_heads = unet.encoder[len(unet.encoder) - 1 - i].heads
        prev_heads = unet.decoder[i - 1].heads if i else 0
        attn_channels = max(enc_heads, prev_heads) * maps_per_head
        has_attn = enc_heads > 0 or prev_heads > 0
        if i == 0:
            attn_channels = max(mid_heads * maps_per_head, attn_channels)
            has_attn = True
            prev_heads = mid_heads
        attn_stream = int(attn_channels * ratio) * has_attn
        skip = refiner_skips.pop()
        first = i == 0
        if use_feature_maps:
            feature_out = int(ch * factor) * 2 if first else int(ch + (skip + ch) * factor) - ch
        else:
            feature_out = 0
        refiner_in = (
            int(ch * factor) * 2 * use_feature_maps + attn_stream
            if first
            else int((skip + ch) * factor) * use_feature_maps + ch + attn_stream
        )

        attention_in = attention_out = 0
        if maps_per_head and (prev_heads + enc_heads) > 0:
            attention_in = maps_per_head * (prev_heads + enc_heads)
            attention_out = attn_stream if attn_stream > 0 else feature_out
        merge_in = feature_out + attention_out
        merge_out = feature_out + attn_stream if merge_in else 0

        level = base.level
        out = rc * channel_mult[level]
        heads = head_dim = 0
        if ds in attention_resolutions:
            head_dim = largest_divisor_at_most(out, min(out, num_head_channels))
            heads = out // head_dim
        upsample = level > 0 and i % (num_res_blocks + 1) == num_res_blocks
        if upsample:
            ds //= 2
        steps.append(
            FusionStep(
                base.in_channels if use_feature_maps else 0,
                feature_out,
                attention_in,
                attention_out,
                merge_in,
                merge_out,
                refiner_in,
                out,
                heads,
                head_dim,
                upsample,
            )
        )
        ch = out
    return steps
