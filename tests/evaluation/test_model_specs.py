"""``evaluation.model_specs``: a ``--model`` spec becomes its predictor; an unknown kind is refused by name."""

import json

import numpy as np
import pytest

from primedepth.evaluation import EnsemblePredictor
from primedepth.evaluation.model_specs import UnknownModelKindError, build_predictor
from primedepth.evaluation.predictors import Predictor

OPTIONS = dict(device="cpu", dtype="fp32", seed=0, marigold_setting="v1-0", dataset_name="nyu")


class Fixed(Predictor):
    """Answers a constant map."""

    name = "fixed"

    def predict(self, sample_id, rgb):
        return np.full(rgb.shape[:2], 2.0, np.float32)


def make_fixed():
    return Fixed()


def make_for(dataset):
    predictor = Fixed()
    predictor.name = f"fixed-{dataset}"
    return predictor


def test_unknown_kinds_are_refused_by_name(tmp_path):
    with pytest.raises(UnknownModelKindError, match="unknown model kind 'weird'"):
        build_predictor("weird=1", output_root=tmp_path, **OPTIONS)


def test_python_factories_and_ensembles_of_finished_runs(tmp_path):
    spec = f"python={__name__}:make_fixed"
    assert build_predictor(spec, output_root=tmp_path, **OPTIONS).predict("x", np.zeros((3, 4, 3))).shape == (3, 4)
    built = build_predictor(f"python={__name__}:make_for", output_root=tmp_path, dataset="nyu-set", **OPTIONS)
    assert built.name == "fixed-nyu-set"
    for run in ("a", "b"):
        folder = tmp_path / "nyu" / run
        (folder / "predictions").mkdir(parents=True)
        (folder / "summary.json").write_text(json.dumps({"alignment": "depth"}))
    ensemble = build_predictor("ensemble=a,b", output_root=tmp_path, **OPTIONS)
    assert isinstance(ensemble, EnsemblePredictor) and ensemble.space == "depth"
    assert [(m.name, m.directory) for m in ensemble.members] == [
        ("a", tmp_path / "nyu" / "a" / "predictions"),
        ("b", tmp_path / "nyu" / "b" / "predictions"),
    ]
