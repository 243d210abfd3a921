"""The loopback hub from the client side: the official repo id, a tiny CLIP repo, huggingface_hub pointed at it."""

import huggingface_hub
import torch

from primedepth.models.frozen.text_encoder import byte_level_tokenizer
from primedepth.utils import hub as hub_probe

REPO = "CVL-Heidelberg/PrimeDepth"


def tiny_clip_repo(folder, width):
    """A full transformers ``CLIPModel`` (like laion/CLIP-ViT-H-14-laion2B-s32B-b79K) with the byte tokenizer."""
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(width)
    text = dict(
        vocab_size=514,
        hidden_size=width,
        intermediate_size=2 * width,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=77,
        bos_token_id=512,
        eos_token_id=513,
        pad_token_id=0,
    )
    vision = dict(
        hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, image_size=28, patch_size=14
    )
    CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).save_pretrained(folder)
    byte_level_tokenizer().save_pretrained(folder)
    return {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()}


def point_hub_at(monkeypatch, url, offline=False):
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", url)
    monkeypatch.setattr(
        huggingface_hub.constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}"
    )
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", offline)
    monkeypatch.setattr(hub_probe, "_probes", {})
