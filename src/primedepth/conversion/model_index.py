"""Writing a model folder's ``model_index.json``: the pipeline's step settings and where each part lies.

Every writer of a model folder (``PrimeDepthPipeline.save_pretrained``, ``primedepth convert``, training checkpoints)
writes the index here, atomically and last, so a folder with an index is complete. Reading it, checked, is
``model_folder.read_model_index``.

The index is also one that diffusers' ``DiffusionPipeline.from_pretrained`` understands: ``vae`` and ``unet`` name
their ``[library, class]``; ``_class_name`` names ``[PIPELINE_MODULE, "PrimeDepthPipeline"]`` and ``labeller``
``[LABELLER_MODULE, its class]``, and ``PIPELINE_MODULE.py`` beside the index and ``labeller/LABELLER_MODULE.py`` import
those classes from the installed ``primedepth`` package (diffusers resolves a pipeline or part class from outside its
known libraries only through such a module, and runs it only with ``trust_remote_code=True``). The text
tower and tokenizer stay a folder name (``"text_encoder"``) or a hub id, as every older folder has them; the pipeline
tells diffusers their classes (``FROZEN_CLASSES``). ``primedepth`` itself never imports these modules: it recognises
these exact files as its own and imports nothing shipped with a model.
"""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

from ..utils.atomic import atomic_write_text
from .loading import MODEL_INDEX

PIPELINE_MODULE = "pipeline_primedepth"
PIPELINE_CLASS = "PrimeDepthPipeline"
LABELLER_MODULE = "labeller_primedepth"
# file name -> its exact text: the modules diffusers imports (one import of the installed primedepth each)
MODULES = {
    f"{PIPELINE_MODULE}.py": (
        '"""``DiffusionPipeline.from_pretrained`` of this folder: the pipeline class of the installed primedepth."""\n'
        "\n"
        "from primedepth.pipelines.pipeline import PrimeDepthPipeline  # noqa: F401\n"
    ),
    f"{LABELLER_MODULE}.py": (
        '"""``DiffusionPipeline.from_pretrained`` of the model above: the labeller classes of primedepth."""\n'
        "\n"
        "from primedepth.models.trained.block_preimage import BlockPreimageLabeller  # noqa: F401\n"
        "from primedepth.models.trained.labeller import PrimeDepthLabeller  # noqa: F401\n"
    ),
}
# the library and class of each part, as diffusers loads them (the labeller's class is the one it was saved as)
FROZEN_CLASSES = {
    "vae": ("diffusers", "AutoencoderKL"),
    "unet": ("diffusers", "UNet2DConditionModel"),
    "text_encoder": ("transformers", "CLIPTextModel"),
    "tokenizer": ("transformers", "CLIPTokenizer"),
}


def model_index(
    settings: dict,
    *,
    labeller_class: str | None = "PrimeDepthLabeller",
    text_encoder: str = "text_encoder",
    tokenizer: str = "tokenizer",
) -> dict:
    """The index of a folder holding ``settings`` (the step settings, ``model_folder.PIPELINE_SETTINGS``), the
    frozen parts in ``vae/`` and ``unet/``, the text tower and tokenizer in the folder or hub repo named, and a
    ``labeller/`` of ``labeller_class`` (None: a folder of frozen parts only)."""
    index = {
        "_class_name": [PIPELINE_MODULE, PIPELINE_CLASS],
        "_diffusers_version": version("diffusers"),
        **settings,
        "vae": list(FROZEN_CLASSES["vae"]),
        "unet": list(FROZEN_CLASSES["unet"]),
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
    }
    if labeller_class is not None:
        index["labeller"] = [LABELLER_MODULE, labeller_class]
    return index


def write_model_index(folder: str | Path, index: dict) -> None:
    """Write ``index`` (from ``model_index``) and the modules diffusers imports into ``folder``, each atomically, the
    index last: a folder with an index is complete."""
    folder = Path(folder)
    atomic_write_text(folder / f"{PIPELINE_MODULE}.py", MODULES[f"{PIPELINE_MODULE}.py"])
    if "labeller" in index:
        atomic_write_text(folder / "labeller" / f"{LABELLER_MODULE}.py", MODULES[f"{LABELLER_MODULE}.py"])
    atomic_write_text(folder / MODEL_INDEX, json.dumps(index, indent=2) + "\n")


def is_our_module(path: Path) -> bool:
    """Whether ``path`` is exactly one of the modules ``write_model_index`` writes (any other code is foreign)."""
    try:
        return path.name in MODULES and path.read_bytes() == MODULES[path.name].encode()
    except OSError:
        return False
