"""The paper's ablations as data: one registry that configs, the trainer, the ablation script and tests read.

Each entry says how the labeller differs from the full model (constructor overrides, or the single-block class) and
in which space the depth loss is computed. Names are the config values (``model.ablation``); labels are the paper's
row names (Table 3).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Ablation:
    name: str
    label: str
    aliases: tuple[str, ...] = ()
    labeller_overrides: dict = field(default_factory=dict)
    block_preimage: bool = False  # the VPD-like labeller that takes the preimage as one block
    latent_input: bool = False  # fusion steps read the VAE latent instead of the UNet's preimage
    loss_space: str = "inverse_depth"  # or "latent": the depth loss between VAE latents

    def labeller_kwargs(self, base_config: dict, overrides: dict, latent_channels: int) -> dict:
        """The labeller's constructor arguments: the frozen model's labeller config, this ablation, then
        ``overrides``."""
        kwargs = {k: v for k, v in dict(base_config).items() if not k.startswith("_")}
        kwargs.pop("block_stage", None)
        kwargs.update(self.labeller_overrides)
        if self.latent_input:
            kwargs["latent_channels"] = latent_channels
        kwargs.update(overrides)
        return kwargs


ABLATIONS: dict[str, Ablation] = {
    a.name: a
    for a in (
        Ablation("full", "Full"),
        Ablation("latent", "Latent", loss_space="latent"),
        Ablation("no_segmentation", "NoSegmen", ("nosegmen",), {"segmentation_classes": 0}),
        Ablation(
            "no_attention", "NoAttent", ("noattent",), {"use_self_attn_maps": False, "use_cross_attn_maps": False}
        ),
        Ablation("no_features", "NoFeature", ("nofeature",), {"use_feature_maps": False}),
        Ablation("block_preimage", "BlockPreIm", ("blockpreim",), block_preimage=True),
        Ablation(
            "no_preimage",
            "no-preimage baseline (VAE latent only)",
            ("nopreimage",),
            {"use_self_attn_maps": False, "use_cross_attn_maps": False, "use_feature_maps": True},
            latent_input=True,
        ),
    )
}


def resolve_ablation(name: str) -> Ablation:
    """The registry entry for a name or alias (case-insensitive); ``KeyError`` listing the choices otherwise."""
    key = str(name).lower()
    for ablation in ABLATIONS.values():
        if key == ablation.name or key in ablation.aliases or key == ablation.label.lower():
            return ablation
    raise KeyError(f"{name!r} is not one of {', '.join(ABLATIONS)}")
