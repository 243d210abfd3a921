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
    cls.config_name: cls
    for cls in (
        NYUDataset,
        KITTIDataset,
        ETH3DDataset,
        ScanNetDataset,
        DIODEDataset,
        NuScenesCDataset,
        RabbitAIDataset,
    )
}

__all__ = ["DATASETS", "DatasetConfig", "DatasetError", "DepthDataset", "Sample"]
