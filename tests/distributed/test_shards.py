"""WebDataset shards: I/O, pseudo-label shards -> shards (resume by shard), training from them (per-rank /
per-worker split, exact resume), predict over shards."""

import io
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from helpers.input_shards import TinyRandomLabellers, make_input_shards
from PIL import Image
from safetensors.torch import load_file

from primedepth.cli import main
from primedepth.data.common import DataError
from primedepth.data.shards import expand_shards, is_shard_spec, read_shard, shard_exists, write_shard
from primedepth.data.streaming import StreamingShards


def _members(path):
    return {s["__key__"]: {k: v for k, v in s.items() if not k.startswith("__")} for s in read_shard(str(path))}


# ----------------------------------------------------------------------------------------------------- shard I/O
def test_brace_patterns_urls_and_atomic_writes(tmp_path):
    make_input_shards(tmp_path / "in", shards=3, per_shard=2)
    pattern = str(tmp_path / "in" / "{00000..00002}.tar")
    assert is_shard_spec(pattern) and is_shard_spec("s3://bucket/{0..9}.tar") and not is_shard_spec("a.png")
    assert expand_shards([pattern, str(tmp_path / "in" / "00001.tar")]) == [
        str(tmp_path / "in" / f"{i:05d}.tar") for i in range(3)
    ]  # expanded, in order, once each
    with pytest.raises(DataError, match=r"00003\.tar: shard not found"):
        expand_shards(str(tmp_path / "in" / "{00000..00007}.tar"))
    samples = list(read_shard(str(tmp_path / "in" / "00001.tar")))
    assert [s["__key__"] for s in samples] == ["000000002", "000000003"]
    assert samples[0]["txt"] == b"alt text 000000002" and json.loads(samples[0]["json"])["width"] == 48

    # a writer that fails leaves neither the shard nor a temporary
    target = tmp_path / "out" / "00000.tar"
    with pytest.raises(RuntimeError):
        with write_shard(str(target)) as tar:
            tar.write({"__key__": "a", "txt": b"x"})
            raise RuntimeError("killed")
    assert not target.exists() and not list((tmp_path / "out").iterdir())

    # fsspec URLs (memory://) in and out
    with write_shard("memory://bucket/r/00000.tar") as tar:
        for s in samples:
            tar.write({"__key__": s["__key__"], "txt": s["txt"]})
    assert shard_exists("memory://bucket/r/00000.tar") and not shard_exists("memory://bucket/r/00001.tar")
    assert [(s["__key__"], s["txt"]) for s in read_shard("memory://bucket/r/00000.tar")] == [
        (s["__key__"], s["txt"]) for s in samples
    ]
    import fsspec

    assert fsspec.filesystem("memory").ls("/bucket/r", detail=False) == ["/bucket/r/00000.tar"]  # no temporary

    # static sharding over processes: chosen from the full list, then finished shards dropped
    from primedepth.distributed.shard_jobs import plan_jobs

    make_input_shards(tmp_path / "five", shards=5, per_shard=1)
    five = str(tmp_path / "five" / "{00000..00004}.tar")
    (tmp_path / "res").mkdir()
    (tmp_path / "res" / "00002.tar").write_bytes((tmp_path / "five" / "00002.tar").read_bytes())
    for rank, names, skipped in ((0, ["00000", "00004"], 1), (1, ["00001", "00003"], 0)):
        jobs, n = plan_jobs(five, str(tmp_path / "res"), rank=rank, world=2)
        assert [j.source for j in jobs] == [str(tmp_path / "five" / f"{x}.tar") for x in names] and n == skipped
        assert [j.target for j in jobs] == [str(tmp_path / "res" / f"{x}.tar") for x in names]

    broken = tmp_path / "broken.tar"
    broken.write_bytes(b"not a tar file at all" * 40)
    with pytest.raises(DataError, match="broken.tar: not a readable tar shard"):
        list(read_shard(str(broken)))


# ---------------------------------------------------------------------------------------------- pseudo-label
@pytest.fixture
def labelled(tmp_path, monkeypatch):
    """4 input shards x 3 images labelled into 4 result shards by tiny random labellers."""
    from primedepth.cli import pseudo_label_cmd

    monkeypatch.setattr(pseudo_label_cmd, "Labellers", TinyRandomLabellers)
    keys = make_input_shards(tmp_path / "in", shards=4, per_shard=3)
    spec = str(tmp_path / "in" / "{00000..00003}.tar")
    result = CliRunner().invoke(main, ["pseudo-label", spec, str(tmp_path / "pseudo")])
    assert result.exit_code == 0, result.output
    assert "done: 4 shards (12 samples) written, 0 skipped" in result.output
    return tmp_path, spec, keys


def test_pseudo_label_shards_hold_every_label_keyed_like_the_input(labelled):
    tmp_path, _, keys = labelled
    labellers = TinyRandomLabellers(None, None, None, "cpu", True)
    for s in range(4):
        inputs, outputs = _members(tmp_path / "in" / f"{s:05d}.tar"), _members(tmp_path / "pseudo" / f"{s:05d}.tar")
        assert list(outputs) == list(inputs) == keys[3 * s : 3 * s + 3]
        for key, out in outputs.items():
            assert set(out) == {"jpg", "depth.npy", "depth.png", "seg.png", "txt", "json"}
            assert out["jpg"] == inputs[key]["jpg"]  # the image travels unchanged
            with Image.open(io.BytesIO(out["jpg"])) as im:
                image = im.convert("RGB")
            depth = np.load(io.BytesIO(out["depth.npy"]))
            assert depth.dtype == np.float16 and depth.shape == (40, 48)
            np.testing.assert_array_equal(depth, labellers.depth(image).astype(np.float16))
            with Image.open(io.BytesIO(out["seg.png"])) as im:
                np.testing.assert_array_equal(np.asarray(im), labellers.segmentation(image))
            with Image.open(io.BytesIO(out["depth.png"])) as im:
                png = np.asarray(im).astype(np.float64)
            d = labellers.depth(image).astype(np.float64)
            np.testing.assert_allclose(png, np.round((d - d.min()) / (d.max() - d.min()) * 65535), atol=1)
            assert out["txt"].decode() == labellers.caption(image)
            meta = json.loads(out["json"])
            assert meta["alt_text"] == f"alt text {key}" and meta["meta"]["key"] == key
            assert (meta["height"], meta["width"]) == (40, 48)


def test_a_shard_is_the_unit_of_resume(labelled):
    tmp_path, spec, _ = labelled
    before = {p.name: p.read_bytes() for p in (tmp_path / "pseudo").glob("*.tar")}
    again = CliRunner().invoke(main, ["pseudo-label", spec, str(tmp_path / "pseudo")])
    assert again.exit_code == 0 and "done: 0 shards (0 samples) written, 4 skipped" in again.output
    # a run killed while writing shard 00002: no result under its name, a temporary of a dead process
    (tmp_path / "pseudo" / "00002.tar").unlink()
    stale = tmp_path / "pseudo" / ".primedepth-tmp-999999999-00002.tar"
    stale.write_bytes(before["00002.tar"][:3000])
    redo = CliRunner().invoke(main, ["pseudo-label", spec, str(tmp_path / "pseudo")])
    assert redo.exit_code == 0 and "done: 1 shards (3 samples) written, 3 skipped" in redo.output
    assert {p.name: p.read_bytes() for p in (tmp_path / "pseudo").iterdir()} == before  # once each, no temporary


def test_bad_samples_and_missing_shards_are_named(tmp_path, monkeypatch):
    from webdataset import TarWriter

    from primedepth.cli import pseudo_label_cmd

    monkeypatch.setattr(pseudo_label_cmd, "Labellers", TinyRandomLabellers)
    make_input_shards(tmp_path / "in", shards=1, per_shard=2)
    samples = list(read_shard(str(tmp_path / "in" / "00000.tar")))
    with open(tmp_path / "in" / "00001.tar", "wb") as fh, TarWriter(fh) as tar:
        tar.write({"__key__": "broken", "jpg": b"no jpeg here"})
        tar.write({"__key__": samples[0]["__key__"] + "b", "jpg": samples[0]["jpg"]})
    result = CliRunner().invoke(
        main, ["pseudo-label", str(tmp_path / "in" / "{00000..00001}.tar"), str(tmp_path / "out")]
    )
    assert result.exit_code == 1
    assert "00001.tar: sample 'broken': not a readable image" in result.output and "Traceback" not in result.output
    assert list(_members(tmp_path / "out" / "00001.tar")) == ["000000000b"]  # the rest of the shard is done
    missing = CliRunner().invoke(
        main, ["pseudo-label", str(tmp_path / "in" / "{00000..00005}.tar"), str(tmp_path / "out2")]
    )
    assert missing.exit_code == 2 and "00002.tar: shard not found" in missing.output


# -------------------------------------------------------------------------------------------------- training
def _stream_keys(dataset, rank, world, workers, batches, start=0, batch_size=2):
    loader = dataset.loader(batch_size, rank, world, start, workers)
    out = []
    for n, batch in enumerate(loader):
        if n == batches:
            break
        out.append((batch["caption"], batch["image"].clone()))
    return out


def test_streaming_split_per_rank_and_worker_and_exact_position(labelled):
    tmp_path, _, _ = labelled
    ds = StreamingShards(
        str(tmp_path / "pseudo" / "{00000..00003}.tar"), (32, 32), seed=3, hflip=True, shuffle_buffer=4
    )
    # 2 processes x 2 workers = 4 streams, one 3-sample shard each per epoch: the first batch of 3 of every
    # stream is its shard of epoch 0, and together they cover every sample once
    seen = [c for r in (0, 1) for caps, _ in _stream_keys(ds, r, 2, 2, 2, batch_size=3) for c in caps]
    assert len(seen) == 12 and len(set(seen)) == 12
    # resuming at micro-batch 3 continues the uninterrupted stream exactly (images: same crops and flips)
    full = _stream_keys(ds, 1, 2, 2, 7)
    resumed = _stream_keys(ds, 1, 2, 2, 4, start=3)
    assert [c for c, _ in resumed] == [c for c, _ in full[3:]]
    for (_, a), (_, b) in zip(resumed, full[3:]):
        assert torch.equal(a, b)
    with pytest.raises(DataError, match="4 shards cannot feed 2 processes x 3 data workers"):
        ds.loader(2, 0, 2, 0, 3)


@pytest.mark.slow  # over 10 s on the 2-core machine (pytest --durations, -m 'not slow' run)
def test_training_from_pseudo_labelled_shards_resumes_exactly(labelled):
    from primedepth.training.trainer import run_training

    tmp_path, _, _ = labelled
    data = {
        "train": [{"kind": "shards", "urls": str(tmp_path / "pseudo" / "{00000..00003}.tar"), "shuffle_buffer": 3}],
        "val": [],
        "resolution": [32, 32],
        "num_workers": 2,
    }

    def cfg(out):
        return {
            "output_dir": str(out),
            "data": data,
            "train": {"max_steps": 4, "batch_size": 2},
            "checkpoint": {"every": 2, "keep_last": 0},
            "logging": {"every": 1, "tensorboard": False},
            "optim": {"lr": 3e-4},
        }

    straight = run_training(None, extra=cfg(tmp_path / "a"), resume=None)
    assert straight.step == 4
    run_training(None, extra=cfg(tmp_path / "b"), resume=None, stop_after=2)
    state = json.loads((tmp_path / "b" / "checkpoints" / "step-000002" / "training" / "state.json").read_text())
    assert state["stream"] == {"microbatches_per_process": 2, "processes": 1, "num_workers": 2}
    resumed = run_training(None, extra=cfg(tmp_path / "b"), resume="auto")
    assert resumed.step == 4

    def weights(run, step):
        return load_file(
            str(
                tmp_path / run / "checkpoints" / f"step-{step:06d}" / "labeller" / "diffusion_pytorch_model.safetensors"
            )
        )

    a, b = weights("a", 4), weights("b", 4)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    first = weights("b", 2)
    assert any(not torch.equal(first[k], a[k]) for k in a)  # it trained
    lines = [json.loads(x) for x in (tmp_path / "a" / "logs" / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(x["loss"]) for x in lines if x["split"] == "train")
    # another layout cannot continue this stream exactly: refused, not silently reshuffled
    other = {**cfg(tmp_path / "b"), "data": {**data, "num_workers": 1}}
    with pytest.raises(ValueError, match="resume with the same processes and data.num_workers"):
        run_training(None, extra=other, resume="auto")


# --------------------------------------------------------------------------------------------------- predict
@pytest.mark.slow  # over 10 s on the 2-core machine (pytest --durations, -m 'not slow' run)
def test_predict_over_shards_matches_predict_over_files(tmp_path):
    keys = make_input_shards(tmp_path / "in", shards=2, per_shard=2)
    spec = str(tmp_path / "in" / "{00000..00001}.tar")
    result = CliRunner().invoke(
        main, ["predict", spec, "-o", str(tmp_path / "out"), "--model", "tiny-random", "--format", "npy,png16,seg"]
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["00000.tar", "00001.tar"]
    # the same images as files through the folder path of predict
    files = tmp_path / "files"
    files.mkdir()
    for s in range(2):
        for key, m in _members(tmp_path / "in" / f"{s:05d}.tar").items():
            (files / f"{key}.jpg").write_bytes(m["jpg"])
    assert (
        CliRunner()
        .invoke(
            main, ["predict", str(files), "-o", str(tmp_path / "ref"), "--model", "tiny-random", "--format", "npy,seg"]
        )
        .exit_code
        == 0
    )
    for s in range(2):
        out = _members(tmp_path / "out" / f"{s:05d}.tar")
        assert list(out) == keys[2 * s : 2 * s + 2]
        for key, m in out.items():
            assert set(m) == {"depth.npy", "depth.png", "seg.png", "json"}
            np.testing.assert_array_equal(np.load(io.BytesIO(m["depth.npy"])), np.load(tmp_path / "ref" / f"{key}.npy"))
            assert m["seg.png"] == (tmp_path / "ref" / f"{key}_seg.png").read_bytes()
            assert json.loads(m["json"])["source"] == str(tmp_path / "in" / f"{s:05d}.tar")
    # an fsspec URL as the output folder
    remote = CliRunner().invoke(
        main, ["predict", spec, "-o", "memory://results/depth", "--model", "tiny-random", "--format", "npy,png16,seg"]
    )
    assert remote.exit_code == 0, remote.output
    for s in range(2):
        assert _members(f"memory://results/depth/{s:05d}.tar") == _members(tmp_path / "out" / f"{s:05d}.tar")
    missing = CliRunner().invoke(
        main, ["predict", str(tmp_path / "in" / "00009.tar"), "-o", str(tmp_path / "x"), "--model", "tiny-random"]
    )
    assert missing.exit_code == 2 and "00009.tar: shard not found" in missing.output
