"""The two labeller classes on their shared base: one flat config per class (save/load/from_config keep every key),
the preimage source each asks for, and a forward that empties the caller's preimage only when told to."""

import copy
import dataclasses
import inspect
import json

import pytest
import torch

from primedepth.conversion.loading import embedded_model_dir
from primedepth.models.frozen.latent_preimage import LatentPreimageExtractor
from primedepth.models.frozen.preimage_extractor import PreimageExtractor
from primedepth.models.trained.base import Labeller, LabellerArguments
from primedepth.models.trained.block_preimage import BlockPreimageLabeller
from primedepth.models.trained.labeller import PrimeDepthLabeller
from primedepth.training.ablations import ABLATIONS

SHARED = [f.name for f in dataclasses.fields(LabellerArguments)]


def _tiny_kwargs(tiny_pipe):
    return {k: v for k, v in tiny_pipe.labeller.config.items() if not k.startswith("_")}


def _preimage(tiny_pipe, labeller, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(1, 3, 24, 32, generator=g) * 2 - 1
    context = torch.randn(1, 77, tiny_pipe.unet.config.cross_attention_dim, generator=g)
    with torch.no_grad():
        return tiny_pipe.frozen.preimage(images, context, **labeller.preimage_request())


def test_each_class_states_only_what_it_adds_and_diffusers_sees_the_flat_arguments():
    assert list(inspect.signature(PrimeDepthLabeller.__init__).parameters) == ["self", *SHARED]
    assert list(inspect.signature(BlockPreimageLabeller.__init__).parameters) == ["self", *SHARED, "block_stage"]
    assert PrimeDepthLabeller._get_init_keys(PrimeDepthLabeller) == {"self", *SHARED}
    assert issubclass(PrimeDepthLabeller, Labeller) and issubclass(BlockPreimageLabeller, Labeller)


@pytest.mark.parametrize("cls,extra", [(PrimeDepthLabeller, {}), (BlockPreimageLabeller, {"block_stage": 2})])
def test_save_load_and_from_config_keep_every_key(tiny_pipe, tmp_path, cls, extra):
    torch.manual_seed(0)
    kwargs = {**_tiny_kwargs(tiny_pipe), "segmentation_classes": 5, **extra}
    model = cls(**kwargs).eval()
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["_class_name"] == cls.__name__
    assert {k for k in saved if not k.startswith("_")} == set(kwargs)
    assert all(saved[k] == (list(v) if isinstance(v, tuple) else v) for k, v in kwargs.items())
    loaded = cls.from_pretrained(tmp_path).eval()
    rebuilt = cls.from_config(saved)
    assert {k: v for k, v in rebuilt.config.items() if k != "_name_or_path"} == {
        k: v for k, v in loaded.config.items() if k != "_name_or_path"
    }
    for key, value in extra.items():
        assert loaded.config[key] == value and rebuilt.config[key] == value
    # the weights round-trip bit for bit, and in memory of their own they give the same outputs bit for bit
    assert model.state_dict().keys() == loaded.state_dict().keys()
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items())
    pre = _preimage(tiny_pipe, model)
    with torch.no_grad():
        a, b, c = (m(pre, segmentation=True) for m in (model, copy.deepcopy(loaded), loaded))
    torch.testing.assert_close(b.depth, a.depth, rtol=0, atol=0)
    torch.testing.assert_close(b.segmentation, a.segmentation, rtol=0, atol=0)
    # as loaded, the weights are memory-mapped from the safetensors file at addresses that need not be 64-byte
    # aligned, and the CPU may then take other kernels (other summation orders): equal to float32 rounding carried
    # through the network, measured up to 4e-5 of the output's scale; 1e-3 of it is the stated bound
    for x, y in ((a.depth, c.depth), (a.segmentation, c.segmentation)):
        torch.testing.assert_close(y, x, rtol=0, atol=1e-3 * float(x.abs().max()))


def test_positional_arguments_still_bind_in_order():
    model = PrimeDepthLabeller(32, (1, 2), 1, (1,), 16, 32, head_ch=16, channels2predictor=32, segmentation_classes=0)
    assert (model.config.model_channels, model.config.num_head_channels, model.config.context_dim) == (32, 16, 32)
    with pytest.raises(TypeError):
        PrimeDepthLabeller(block_stage=1)  # BlockPreIm's own argument is not the full model's


def test_the_shipped_mini_labeller_config_is_the_classes_arguments():
    folder = embedded_model_dir() / "labeller"
    saved = json.loads((folder / "config.json").read_text())
    model = PrimeDepthLabeller.from_pretrained(folder)
    assert {k for k in saved if not k.startswith("_")} == set(SHARED)
    as_json = json.loads(json.dumps({k: v for k, v in model.config.items() if not k.startswith("_")}))
    assert all(as_json[k] == v for k, v in saved.items() if not k.startswith("_"))


@pytest.mark.parametrize("cls", [PrimeDepthLabeller, BlockPreimageLabeller])
def test_forward_empties_the_preimage_only_when_asked(tiny_pipe, cls):
    torch.manual_seed(0)
    model = cls(**_tiny_kwargs(tiny_pipe)).eval()
    pre = _preimage(tiny_pipe, model)
    with torch.no_grad():
        kept = model(pre, low_memory=True)
        assert all(f is not None for f in pre.features) and pre.mid_maps is not None
        consumed = model(pre, low_memory=True, consume_preimage=True)
    assert all(f is None for f in pre.features) and pre.mid_maps is None
    assert all(m is None for m in (*pre.encoder_maps, *pre.decoder_maps))
    torch.testing.assert_close(consumed.depth, kept.depth, rtol=0, atol=0)
    with pytest.raises(TypeError):
        model(_preimage(tiny_pipe, model), False, True, False, True, True)  # consume_preimage is keyword-only


def test_the_registry_builds_each_ablation_and_its_labeller_names_the_preimage_source(tiny_pipe):
    latent_channels = tiny_pipe.vae.config.latent_channels
    for name, ablation in ABLATIONS.items():
        kwargs = ablation.labeller_kwargs(tiny_pipe.labeller.config, {"block_stage": 1}, latent_channels)
        model = ablation.build_labeller(kwargs, seed=0)
        assert type(model) is ablation.labeller_class
        assert (ablation.labeller_class is BlockPreimageLabeller) == (name == "block_preimage")
        source = model.preimage_request()["source"]
        assert source == ("latent" if name == "no_preimage" else "unet"), name
        extractor = tiny_pipe.frozen.extractors[source]
        assert isinstance(extractor, LatentPreimageExtractor if source == "latent" else PreimageExtractor)
    again = ABLATIONS["full"].build_labeller(ABLATIONS["full"].labeller_kwargs(tiny_pipe.labeller.config, {}, 4), 0)
    first = ABLATIONS["full"].build_labeller(ABLATIONS["full"].labeller_kwargs(tiny_pipe.labeller.config, {}, 4), 0)
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), first.state_dict().values()))
    with pytest.raises(TypeError, match="typo"):
        ABLATIONS["full"].build_labeller({"typo": 1}, seed=0)


def test_the_production_extractor_has_no_latent_switch_and_unknown_sources_are_refused(tiny_pipe):
    assert "latent_only" not in inspect.signature(PreimageExtractor.__call__).parameters
    assert tiny_pipe.frozen.extractor is tiny_pipe.frozen.extractors["unet"]
    with pytest.raises(ValueError, match="unknown preimage source 'vae'"):
        tiny_pipe.frozen.extract(torch.zeros(1, 4, 3, 4), torch.zeros(1, 77, 32), source="vae")
