"""Zero-shot depth benchmark harness: datasets in their real layouts, the Marigold alignment protocol,
PrimeDepth and peer adapters, resumable/sharded runs, ensembling and the report. See docs/evaluation.md."""

from .datasets import DATASETS, DatasetError
from .ensemble import EnsemblePredictor, write_oracle_run
from .metrics import compute_metrics
from .peers import MarigoldPredictor
from .predictors import (
    DepthAnythingV2Predictor,
    Predictor,
    PrimeDepthPredictor,
    SavedPredictor,
    WeightsNotFoundError,
)
from .runner import evaluate

__all__ = [
    "DATASETS",
    "DatasetError",
    "DepthAnythingV2Predictor",
    "EnsemblePredictor",
    "MarigoldPredictor",
    "Predictor",
    "PrimeDepthPredictor",
    "SavedPredictor",
    "WeightsNotFoundError",
    "compute_metrics",
    "evaluate",
    "write_oracle_run",
]
