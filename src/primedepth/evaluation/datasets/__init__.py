"""One dataset class per benchmark; ``DATASETS`` maps the CLI name to the class."""

from .base import DatasetConfig, DatasetError, DepthDataset, Sample
from .diode import DIODEDataset
from .eth3d import ETH3DDataset
from .kitti import KITTIDataset
from .nuscenes_c import NuScenesCDataset
from .nyu import NYUDataset
from .rabbitai import RabbitAIDataset
from .scannet import ScanNetDataset

DATASETS = {
    "nyu": NYUDataset,
    "kitti": KITTIDataset,
    "eth3d": ETH3DDataset,
    "scannet": ScanNetDataset,
    "diode": DIODEDataset,
    "nuscenes_c": NuScenesCDataset,
    "rabbitai": RabbitAIDataset,
}

__all__ = ["DATASETS", "DatasetConfig", "DatasetError", "DepthDataset", "Sample"]
