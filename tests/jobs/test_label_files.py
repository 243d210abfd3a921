"""``jobs.label_files`` called directly with tiny random labellers: every readable image labelled with the
labellers' own depth, segmentation and caption, an unreadable one named and retried by a rerun, captions only."""

import json

import numpy as np
from helpers.input_shards import TinyRandomLabellers
from PIL import Image

from primedepth.data.pseudo import INFO, MANIFEST
from primedepth.jobs.label_files import caption_files, label_files, label_image, list_images


def _images(tmp_path):
    root = tmp_path / "images"
    (root / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in ("a.png", "sub/b.jpg"):
        Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(root / name)
    (root / "broken.png").write_bytes(b"not an image")
    (root / "notes.txt").write_text("not listed")
    return root


def test_label_files_writes_the_labellers_outputs_and_names_the_unreadable(tmp_path):
    root, out = _images(tmp_path), tmp_path / "out"
    out.mkdir()
    names = list_images(root)
    assert names == ["a.png", "broken.png", "sub/b.jpg"]
    labellers = TinyRandomLabellers("depth-id", "seg-id", "caption-id", "cpu", True)
    lines = []
    result = label_files(labellers, root, out, names, log=lines.append)

    assert (result.labelled, result.total) == (2, 2)
    assert len(result.failures) == 1 and result.failures[0].startswith(f"{root / 'broken.png'}: cannot read the image")
    assert lines == ["process 0: labelled 2 new images", f"2 images in {out / MANIFEST}"]
    info = json.loads((out / INFO).read_text())
    assert (info["depth_model"], info["segmentation_model"], info["caption_model"]) == (
        "depth-id",
        "seg-id",
        "caption-id",
    )
    entries = [json.loads(line) for line in (out / MANIFEST).read_text().splitlines()]
    assert [e["key"] for e in entries] == ["a.png", "sub/b.jpg"]
    for entry in entries:
        with Image.open(root / entry["key"]) as im:
            image = im.convert("RGB")
        depth, seg, caption = label_image(labellers, image)
        np.testing.assert_array_equal(np.load(out / entry["depth"]), depth.astype(np.float16))
        with Image.open(out / entry["segmentation"]) as im:
            np.testing.assert_array_equal(np.asarray(im), seg)
        assert entry["caption"] == caption and (entry["height"], entry["width"]) == (24, 32)
    assert not list(out.glob("manifest.rank*.jsonl"))  # merged into the manifest

    again = label_files(labellers, root, out, names, segmentation=False, log=lines.append)
    assert (again.labelled, again.total, len(again.failures)) == (0, 2, 1)  # done ones skipped, the bad one retried


def test_caption_files_keys_captions_by_relative_path(tmp_path):
    root, out = _images(tmp_path), tmp_path / "out"
    out.mkdir()
    labellers = TinyRandomLabellers(None, None, None, "cpu", True)
    result = caption_files(labellers, root, out, list_images(root), log=lambda line: None)
    captions = json.loads((out / "captions.json").read_text())
    assert sorted(captions) == ["a.png", "sub/b.jpg"] and (result.labelled, len(result.failures)) == (2, 1)
    with Image.open(root / "sub" / "b.jpg") as im:
        assert captions["sub/b.jpg"] == labellers.caption(im.convert("RGB"))
