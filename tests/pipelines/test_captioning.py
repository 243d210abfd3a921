"""BLIP-2 captions end to end on a tiny random ``Blip2ForConditionalGeneration``, and the empty-prompt fallback when
the caption model cannot be had."""

import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from primedepth.pipelines.captioning import Blip2Captioner, CaptionCache, CaptionModelUnavailableError

WORDS = ["<pad>", "</s>", "<unk>", "<image>", *"a photo of the red box on table with two cats near window".split()]


@pytest.fixture(scope="module")
def tiny_blip2(tmp_path_factory):
    """A random BLIP-2 (ViT, Q-Former, OPT) with a word-level tokenizer, saved like a hub checkpoint."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import (
        Blip2Config,
        Blip2ForConditionalGeneration,
        Blip2Processor,
        BlipImageProcessorPil,
        OPTConfig,
        PreTrainedTokenizerFast,
    )

    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    backend.pre_tokenizer, backend.decoder = pre_tokenizers.Whitespace(), decoders.WordPiece()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", bos_token="</s>", unk_token="<unk>"
    )
    text = OPTConfig(
        vocab_size=len(WORDS),
        hidden_size=32,
        num_hidden_layers=1,
        ffn_dim=64,
        num_attention_heads=2,
        word_embed_proj_dim=32,
        max_position_embeddings=64,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=1,
    )
    config = Blip2Config(
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            image_size=28,
            patch_size=14,
        ),
        qformer_config=dict(
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            encoder_hidden_size=32,
            vocab_size=len(WORDS),
        ),
        text_config=text.to_dict(),
        num_query_tokens=4,
        image_token_index=3,
    )
    torch.manual_seed(0)
    model = Blip2ForConditionalGeneration(config).eval()
    processor = Blip2Processor(
        image_processor=BlipImageProcessorPil(size={"height": 28, "width": 28}), tokenizer=tokenizer, num_query_tokens=4
    )
    path = tmp_path_factory.mktemp("blip2")
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


@pytest.fixture
def pipe():
    from primedepth import PrimeDepthPipeline

    return PrimeDepthPipeline.from_pretrained("tiny-random", device="cpu")


def reference_caption(folder, rgb):
    """transformers on its own: processor + generate + decode, from a PIL image."""
    from transformers import Blip2ForConditionalGeneration, Blip2Processor

    processor = Blip2Processor.from_pretrained(folder)
    model = Blip2ForConditionalGeneration.from_pretrained(folder).eval()
    with torch.no_grad():
        ids = model.generate(**processor(images=[Image.fromarray(rgb)], return_tensors="pt"))
    return processor.batch_decode(ids, skip_special_tokens=True)[0].strip()


@pytest.mark.slow  # over 10 s on the 2-core machine (pytest --durations, -m 'not slow' run)
def test_blip2_captions_condition_the_pipeline(tiny_blip2, pipe, rgb_image, tmp_path):
    expected = reference_caption(tiny_blip2, rgb_image)
    words = expected.split()
    assert words and all(w in WORDS[4:] for w in words)

    captioner = Blip2Captioner(str(tiny_blip2), local_files_only=True, required=True)
    pixels = torch.from_numpy(rgb_image).permute(2, 0, 1).float() / 255
    assert captioner([pixels]) == [expected]

    pipe.captioner, pipe.caption_cache = captioner, CaptionCache(tmp_path / "captions.json")
    auto = pipe(rgb_image, caption="auto", noise="none")
    given = pipe(rgb_image, caption=expected, noise="none")
    assert auto.captions == [expected]
    np.testing.assert_array_equal(auto.inverse_depth[0], given.inverse_depth[0])
    assert list(json.loads((tmp_path / "captions.json").read_text()).values()) == [expected]

    captioner._model = None  # a cached caption never reloads the model
    captioner.model_id = str(tmp_path / "gone")
    assert pipe(rgb_image, caption="auto", noise="none").captions == [expected]


@pytest.mark.slow  # over 10 s on the 2-core machine (pytest --durations, -m 'not slow' run)
def test_unavailable_blip2_falls_back_to_the_empty_prompt_once(pipe, rgb_image, tmp_path, caplog):
    pipe.caption_cache = CaptionCache(tmp_path / "captions.json")
    pipe.captioner = Blip2Captioner(str(tmp_path / "no-blip2"), local_files_only=True)
    with caplog.at_level(logging.WARNING):
        first = pipe([rgb_image, rgb_image[::-1].copy()], caption="auto", noise="none")
        pipe(rgb_image, caption="auto", noise="none")
    notes = [r.getMessage() for r in caplog.records if "using the empty prompt" in r.getMessage()]
    assert len(notes) == 1 and notes[0].startswith("note: caption model")
    assert first.captions == ["", ""]
    empty = pipe(rgb_image, caption="none", noise="none")
    np.testing.assert_array_equal(first.inverse_depth[0], empty.inverse_depth[0])
    assert not (tmp_path / "captions.json").exists()  # a fallback is not a caption: nothing cached

    pipe.captioner.required = True  # an explicit --caption auto
    with pytest.raises(CaptionModelUnavailableError, match="--caption none"):
        pipe(rgb_image, caption="auto")
