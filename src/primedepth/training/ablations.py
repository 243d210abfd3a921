"""The paper's ablations as data: one registry that configs, the trainer, the ablation script and tests read.

Each entry says how the labeller differs from the full model (constructor overrides, or the single-block class) and
in which space the depth loss is computed, and builds that labeller (``build_labeller``, of ``labeller_class``).
Names are the config values (``model.ablation``); labels are the paper's row names (Table 3). The labeller classes
are imported when first asked for (``models.trained.classes``), so that reading configs needs no torch.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

from ..models.trained.classes import labeller_classes


def _argument_names(cls: type) -> set[str]:
    return set(inspect.signature(cls.__init__).parameters) - {"self"}


@dataclass(frozen=True)
class Ablation:
    name: str
    label: str
    aliases: tuple[str, ...] = ()
    labeller_overrides: dict = field(default_factory=dict)
    labeller: str = "PrimeDepthLabeller"  # the class name; "BlockPreimageLabeller": the preimage as one block
    latent_input: bool = False  # fusion steps read the VAE latent instead of the UNet's preimage
    loss_space: str = "inverse_depth"  # or "latent": the depth loss between VAE latents

    @property
    def labeller_class(self) -> type:
        return labeller_classes()[self.labeller]

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

    def build_labeller(self, kwargs: dict, seed: int):
        """A fresh ``labeller_class`` from ``kwargs`` (``labeller_kwargs``' result), its weights drawn from ``seed``
        without touching the global RNG. Arguments that only another labeller class takes (``block_stage``) are
        dropped; any other unknown one is the constructor's error."""
        import torch

        cls = self.labeller_class
        own = _argument_names(cls)
        foreign = set().union(*map(_argument_names, labeller_classes().values())) - own
        kwargs = {k: v for k, v in kwargs.items() if k not in foreign}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return cls(**kwargs)


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
        Ablation("block_preimage", "BlockPreIm", ("blockpreim",), labeller="BlockPreimageLabeller"),
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
