"""Text conditioning: the OpenCLIP ViT-H/14 text tower, **last** layer + final LayerNorm, as a transformers
``CLIPTextModel``.

Stable Diffusion 2.x conditions on the penultimate layer, so diffusers' SD 2.1 ``text_encoder`` folder has 23 layers
and cannot reproduce PrimeDepth; the full 24-layer tower is e.g. the text half of
``laion/CLIP-ViT-H-14-laion2B-s32B-b79K`` (the weights SD 2 was trained with), or the ``cond_stage_model`` of the
official checkpoint. Tokenisation follows open_clip: <start> tokens <end>, truncated to 77, padded with id 0.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer
from transformers.utils import logging as transformers_logging

from ...utils.hub import hub_failure

DEFAULT_TEXT_ENCODER = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
CONTEXT_LENGTH = 77


def open_clip_vit_h14_text_config() -> CLIPTextConfig:
    return CLIPTextConfig(
        vocab_size=49408,
        hidden_size=1024,
        intermediate_size=4096,
        num_hidden_layers=24,
        num_attention_heads=16,
        max_position_embeddings=CONTEXT_LENGTH,
        hidden_act="gelu",
        layer_norm_eps=1e-5,
        projection_dim=1024,
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=0,
    )


def tokenize(tokenizer: CLIPTokenizer, prompts: list[str]) -> torch.Tensor:
    """open_clip token ids (B, 77): start, BPE tokens, end (kept when truncating), zeros after."""
    ids = tokenizer(list(prompts), truncation=True, max_length=CONTEXT_LENGTH)["input_ids"]
    out = torch.zeros(len(ids), CONTEXT_LENGTH, dtype=torch.long)
    for row, seq in enumerate(ids):
        out[row, : len(seq)] = torch.tensor(seq)
    return out


@torch.no_grad()
def encode_prompts(text_encoder: CLIPTextModel, tokenizer: CLIPTokenizer, prompts: list[str]) -> torch.Tensor:
    """(B, 77, C) token states of the last layer after the final LayerNorm (causal mask only, like open_clip)."""
    ids = tokenize(tokenizer, prompts).to(text_encoder.device)
    return text_encoder(input_ids=ids).last_hidden_state


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte-to-character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    extra = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + extra)
            extra += 1
    return dict(zip(bs, map(chr, cs)))


def byte_level_tokenizer() -> CLIPTokenizer:
    """A CLIP tokenizer with the byte alphabet only (no merges): real tokenisation for tiny offline models.

    Its first 514 ids coincide with the real CLIP vocabulary (bytes, bytes + ``</w>``), then start and end.
    """
    return _clip_tokenizer([])


def caption_vocabulary_tokenizer(captions: list[str]) -> CLIPTokenizer:
    """A CLIP tokenizer whose BPE merges are learned on ``captions`` until every word in them is one token.

    The byte alphabet stays, so unseen words still tokenise (into pieces). This is how CLIP's own BPE was made, on a
    corpus of one small vocabulary: a mini-SD caption of ~165 characters becomes ~35 tokens instead of overflowing
    the 77-token context as bytes do.
    """
    backend = byte_level_tokenizer().backend_tokenizer  # CLIP's normaliser and byte-level word splitting
    words: dict[tuple[str, ...], int] = {}
    for caption in captions:
        for word, _ in backend.pre_tokenizer.pre_tokenize_str(backend.normalizer.normalize_str(caption)):
            key = tuple(word[:-1]) + (word[-1] + "</w>",)
            words[key] = words.get(key, 0) + 1
    merges = []
    while True:
        pairs: dict[tuple[str, str], int] = {}
        for word, count in words.items():
            for pair in zip(word, word[1:]):
                pairs[pair] = pairs.get(pair, 0) + count
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))  # most frequent, ties broken by the pair itself
        merges.append(best)
        words = {_merge_pair(word, best): count for word, count in words.items()}
    return _clip_tokenizer(merges)


def _merge_pair(word: tuple[str, ...], pair: tuple[str, str]) -> tuple[str, ...]:
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
            out.append(word[i] + word[i + 1])
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


def _clip_tokenizer(merges: list[tuple[str, str]]) -> CLIPTokenizer:
    """CLIPTokenizer over the byte alphabet plus ``merges`` (in rank order), start and end last."""
    chars = list(_bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars] + [a + b for a, b in merges]
    tokens = list(dict.fromkeys(tokens)) + ["<|startoftext|>", "<|endoftext|>"]
    vocab = {t: i for i, t in enumerate(tokens)}
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "vocab.json").write_text(json.dumps(vocab))
        (Path(tmp) / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
        return CLIPTokenizer(str(Path(tmp) / "vocab.json"), str(Path(tmp) / "merges.txt"), pad_token="!")


# The other half of a full CLIP checkpoint (e.g. laion/CLIP-ViT-H-14-laion2B-s32B-b79K): never loaded into the tower.
CLIP_NON_TEXT_KEYS = ("vision_model.", "visual_projection.", "text_projection.", "logit_scale")


def load_text_tower(source, **hub_kwargs) -> CLIPTextModel:
    """``CLIPTextModel.from_pretrained`` from a text-tower folder or a full CLIP repo, whose vision half is dropped
    without transformers' load report (a coloured table with one line per vision key, ~500 for ViT-H/14). What the
    report would have said that matters is checked here instead: a text weight missing from ``source``, of another
    shape, or a key that belongs to neither tower is an ``OSError`` naming it."""
    verbosity = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()
    try:
        model, info = CLIPTextModel.from_pretrained(source, output_loading_info=True, **hub_kwargs)
    except OSError as err:
        if Path(source).is_dir():
            raise
        why = hub_failure(err, cache_only_now=bool(hub_kwargs.get("local_files_only")))
        raise OSError(f"text encoder {str(source)!r}: {why}") from None
    finally:
        transformers_logging.set_verbosity(verbosity)
    problems = [f"missing {k}" for k in sorted(info.get("missing_keys") or ())]
    problems += [f"{k} has another shape" for k in sorted(str(k) for k in info.get("mismatched_keys") or ())]
    problems += [
        f"unexpected {k}" for k in sorted(info.get("unexpected_keys") or ()) if not k.startswith(CLIP_NON_TEXT_KEYS)
    ]
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise OSError(f"text encoder {str(source)!r}: not a CLIP text tower: {', '.join(problems[:5])}{more}")
    return model


def load_clip_tokenizer(source, **hub_kwargs) -> CLIPTokenizer:
    """``CLIPTokenizer.from_pretrained`` that fails loudly: transformers returns an empty tokenizer when the
    vocabulary files are missing, which would silently turn every caption into padding."""
    try:
        tokenizer = CLIPTokenizer.from_pretrained(source, pad_token="!", **hub_kwargs)
    except OSError as err:
        if Path(source).is_dir():
            raise
        why = hub_failure(err, cache_only_now=bool(hub_kwargs.get("local_files_only")))
        raise OSError(f"tokenizer {str(source)!r}: {why}") from None
    if len(tokenizer.get_vocab()) < 258:
        why = "no vocabulary found (vocab.json/merges.txt or tokenizer.json)"
        if hub_kwargs.get("local_files_only") and not Path(source).is_dir():  # a hub id looked up in the cache only
            why = hub_failure(OSError(why), cache_only_now=True)
        raise OSError(f"tokenizer {str(source)!r}: {why}")
    return tokenizer
