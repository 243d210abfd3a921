"""The caption-vocabulary tokenizer of mini-SD: BPE merges learned on captions make every caption word one token,
the byte alphabet still covers unseen words, and it round-trips through save/load like any CLIP tokenizer."""

from primedepth.models.frozen.text_encoder import (
    CONTEXT_LENGTH,
    byte_level_tokenizer,
    caption_vocabulary_tokenizer,
    load_clip_tokenizer,
    tokenize,
)

CAPTIONS = [
    "a room with a red floor and green walls, with a red sphere",
    "an open yard with a grey floor under the sky, with a green box and a red cylinder",
]


def test_every_caption_word_is_one_token():
    tok = caption_vocabulary_tokenizer(CAPTIONS)
    assert tok.tokenize("a red sphere, a green box") == [
        "a</w>",
        "red</w>",
        "sphere</w>",
        ",</w>",
        "a</w>",
        "green</w>",
        "box</w>",
    ]
    # "green" and "red" share the pair (r, e): learned merges must still build both words whole
    assert tok.tokenize("Green   RED") == ["green</w>", "red</w>"]
    ids = tokenize(tok, [CAPTIONS[1]])[0]
    words = len(CAPTIONS[1].replace(",", " ,").split())
    assert int((ids != 0).sum()) == words + 2  # start, one id per word, end
    assert ids[0] == tok.bos_token_id and ids[words + 1] == tok.eos_token_id


def test_unseen_words_fall_back_to_bytes_and_byte_ids_are_kept():
    tok, base = caption_vocabulary_tokenizer(CAPTIONS), byte_level_tokenizer()
    assert "".join(tok.tokenize("zebra")).replace("</w>", "") == "zebra"
    assert tok.convert_tokens_to_ids(["z", "a</w>"]) == base.convert_tokens_to_ids(["z", "a</w>"])
    assert len(tok) > len(base)


def test_long_caption_fits_the_context_only_with_the_caption_vocabulary():
    caption = ", ".join(CAPTIONS)
    assert len(caption) > CONTEXT_LENGTH
    assert tokenize(byte_level_tokenizer(), [caption])[0, -1] != 0  # bytes: truncated at the context
    assert tokenize(caption_vocabulary_tokenizer(CAPTIONS), [caption])[0, -1] == 0


def test_round_trips_through_save_pretrained(tmp_path):
    tok = caption_vocabulary_tokenizer(CAPTIONS)
    tok.save_pretrained(tmp_path)
    again = load_clip_tokenizer(tmp_path)
    assert again.get_vocab() == tok.get_vocab()
    assert tokenize(again, CAPTIONS).tolist() == tokenize(tok, CAPTIONS).tolist()
