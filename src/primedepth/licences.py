"""The licences of the weights that can make an output, in one table, as each model card states them.

Outputs name the weights that made them and these licences (metadata and the commands' first line), so a user
knows whether the result may be used commercially; ``--commercial-safe`` refuses weights marked non-commercial.
A folder or hub id given with ``NAME=SOURCE`` is reported under NAME's entry: other weights in that folder carry
their own licence, which the user must check.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Licence:
    weights: str  # what the weights are
    licence: str  # as the card states it
    commercial: bool  # whether the licence allows commercial use
    card: str  # where it is stated

    def line(self) -> str:
        use = "commercial use allowed" if self.commercial else "NON-COMMERCIAL"
        return f"{self.weights}: {self.licence} ({use}; {self.card})"


_DA_REPO = "github.com/DepthAnything/Depth-Anything-V2 (Small: Apache-2.0, Base/Large: CC-BY-NC-4.0)"
_SD21 = Licence(
    "PrimeDepth on the frozen Stable Diffusion 2.1",
    "CreativeML Open RAIL++-M (use-based restrictions)",
    True,
    "huggingface.co/stabilityai/stable-diffusion-2-1",
)

LICENCES: dict[str, Licence] = {
    "primedepth": _SD21,
    "primedepth-mini": Licence(
        "PrimeDepth-mini (trained on this package's rendered scenes)", "MIT", True, "this package's licence"
    ),
    "primedepth-mini-metric": Licence(
        "the miniature world's small metric prior (trained on this package's rendered scenes)",
        "MIT",
        True,
        "this package's licence",
    ),
    "tiny-random": Licence("random weights (tests)", "none (no trained weights)", True, "this package"),
    "depth-pro": Licence(
        "Apple Depth Pro",
        "Apple Machine Learning Research Model licence (apple-amlr): research purposes only",
        False,
        "huggingface.co/apple/DepthPro-hf",
    ),
    "depth-anything-v2-small": Licence(
        "Depth Anything V2 Small", "Apache-2.0", True, "huggingface.co/depth-anything/Depth-Anything-V2-Small-hf"
    ),
    "depth-anything-v2-base": Licence(
        "Depth Anything V2 Base", "CC-BY-NC-4.0", False, "huggingface.co/depth-anything/Depth-Anything-V2-Base-hf"
    ),
    "depth-anything-v2-large": Licence(
        "Depth Anything V2 Large", "CC-BY-NC-4.0", False, "huggingface.co/depth-anything/Depth-Anything-V2-Large-hf"
    ),
}
LICENCES["depth-anything-v2"] = LICENCES["depth-anything-v2-large"]
for _scene in ("indoor", "outdoor"):
    # the -hf metric cards state no licence; the repository's terms per backbone size apply
    LICENCES[f"depth-anything-v2-metric-{_scene}-small"] = Licence(
        f"Depth Anything V2 Metric {_scene.title()} Small", "Apache-2.0", True, _DA_REPO
    )
    for _size in ("base", "large"):
        LICENCES[f"depth-anything-v2-metric-{_scene}-{_size}"] = Licence(
            f"Depth Anything V2 Metric {_scene.title()} {_size.title()}", "CC-BY-NC-4.0", False, _DA_REPO
        )
    LICENCES[f"depth-anything-v2-metric-{_scene}"] = LICENCES[f"depth-anything-v2-metric-{_scene}-large"]
LICENCES["points"] = Licence("the user's metric points", "the user's own data", True, "--metric points=FILE")


class NonCommercialError(ValueError):
    """``--commercial-safe`` and weights whose licence forbids commercial use."""


def weight_names(model: str, ensemble: str | None = None, metric: str | None = None) -> list[str]:
    """The licence-table names of what makes a command's outputs: the PrimeDepth model, the ensemble member and
    the metric prior (their ``=SOURCE`` parts dropped)."""
    names = [str(model)]
    names += [spec.partition("=")[0] for spec in (ensemble, metric) if spec]
    return names


def licence_of(name: str) -> Licence:
    """The licence entry of a model or member name; a converted PrimeDepth folder or hub id counts as PrimeDepth
    (its frozen parts are Stable Diffusion 2.1)."""
    return LICENCES.get(name, LICENCES["primedepth"])


def check_commercial(names: list[str]) -> None:
    """Raise ``NonCommercialError`` naming every non-commercial licence among ``names``."""
    refused = [licence_of(n) for n in names if not licence_of(n).commercial]
    if refused:
        raise NonCommercialError(
            "--commercial-safe: " + "; ".join(lic.line() for lic in refused) + " -- choose commercially usable weights"
        )


def licence_metadata(names: list[str]) -> dict[str, dict]:
    """``{name: {weights, licence, commercial, card}}`` for output metadata."""
    return {n: vars(licence_of(n)).copy() for n in names}


def licence_line(names: list[str]) -> str:
    """One line for the CLI: the weights that make the outputs and their licences."""
    return "licences: " + " | ".join(licence_of(n).line() for n in names)
