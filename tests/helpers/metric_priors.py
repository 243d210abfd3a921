"""Tiny random metric priors (Depth Pro with a fixed field of view, metric Depth Anything V2) saved as hub repos."""

import torch

FOV_DEG = 55.0


def hub_files(folder):
    return {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()}


def save_tiny_depth_pro_with_fov(path, fov=FOV_DEG):
    """The tiny random Depth Pro of the evaluation tests, its FoV head answering ``fov`` degrees for any image."""
    from transformers import DepthProForDepthEstimation

    from helpers.tiny_peers import save_tiny_depth_pro

    save_tiny_depth_pro(path)
    model = DepthProForDepthEstimation.from_pretrained(path)
    last = model.fov_model.head.layers[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(fov)
    model.save_pretrained(path)
    return path


def save_tiny_metric_depth_anything(path, max_depth=20, kind="metric"):
    """A random Depth Anything V2 metric model (as the -hf metric checkpoints: depth_estimation_type "metric")."""
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation

    from helpers.tiny_peers import save_tiny_depth_anything

    save_tiny_depth_anything(path)
    config = DepthAnythingConfig.from_pretrained(path)
    config.depth_estimation_type, config.max_depth = kind, max_depth
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        DepthAnythingForDepthEstimation(config).save_pretrained(path)
    return path
