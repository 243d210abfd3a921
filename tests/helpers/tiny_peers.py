"""Tiny random-weight checkpoints of the recent peers, saved in their libraries' own formats (as a hub download would
be), so that the adapters run offline in well under a second each."""

from __future__ import annotations

from pathlib import Path

import torch


def save_tiny_depth_anything(path: Path) -> Path:
    """A random Depth Anything (DINOv2 backbone + DPT head) with its DPT image processor."""
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config, DPTImageProcessor

    backbone = Dinov2Config(
        image_size=28,
        patch_size=14,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        out_features=["stage1", "stage2"],
        reshape_hidden_states=False,
    )
    config = DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=16,
        patch_size=14,
        neck_hidden_sizes=[8, 16],
        fusion_hidden_size=8,
        head_hidden_size=4,
        reassemble_factors=[2, 1],
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        DepthAnythingForDepthEstimation(config).save_pretrained(path)
    DPTImageProcessor(size={"height": 28, "width": 28}, keep_aspect_ratio=True, ensure_multiple_of=14).save_pretrained(
        path
    )
    return path


DEPTH_PRO_SIZE = 32


def save_tiny_depth_pro(path: Path) -> Path:
    """A random Depth Pro (three tiny DINOv2 encoders, two patch scales) with a preprocessor config of its format."""
    import json

    from transformers import DepthProConfig, DepthProForDepthEstimation

    encoder = dict(
        model_type="dinov2",
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        patch_size=4,
        image_size=16,
    )
    config = DepthProConfig(
        patch_size=16,
        fusion_hidden_size=8,
        intermediate_hook_ids=[1, 0],
        intermediate_feature_dims=[8, 8],
        scaled_images_ratios=[0.5, 1.0],
        scaled_images_overlap_ratios=[0.0, 0.5],
        scaled_images_feature_dims=[8, 8],
        merge_padding_value=1,
        use_fov_model=True,
        image_model_config=dict(encoder),
        patch_model_config=dict(encoder),
        fov_model_config=dict(encoder),
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        DepthProForDepthEstimation(config).save_pretrained(path)
    (path / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "image_processor_type": "DepthProImageProcessor",
                "do_resize": True,
                "do_rescale": True,
                "do_normalize": True,
                "size": {"height": DEPTH_PRO_SIZE, "width": DEPTH_PRO_SIZE},
                "rescale_factor": 1 / 255,
                "resample": 2,
                "image_mean": [0.5, 0.5, 0.5],
                "image_std": [0.5, 0.5, 0.5],
            }
        )
    )
    return path


def save_tiny_marigold(
    path: Path, scheduler: str = "ddim", default_steps: int = 2, processing_resolution: int = 32
) -> Path:
    """A random Marigold-format depth checkpoint (UNet with 8 input channels, VAE, CLIP text tower, byte-level
    tokenizer) with a DDIM "trailing" (v1-1, E2E-FT) or LCM scheduler."""
    from diffusers import AutoencoderKL, DDIMScheduler, LCMScheduler, MarigoldDepthPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from primedepth.models.frozen.text_encoder import byte_level_tokenizer

    tokenizer = byte_level_tokenizer()
    tokenizer.model_max_length = 77  # saved with the tokenizer, as in CLIP's
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        unet = UNet2DConditionModel(
            sample_size=8,
            in_channels=8,
            out_channels=4,
            layers_per_block=1,
            block_out_channels=(8, 16),
            down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
            cross_attention_dim=16,
            attention_head_dim=4,
            norm_num_groups=4,
        )
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * 2,
            up_block_types=("UpDecoderBlock2D",) * 2,
            block_out_channels=(8, 16),
            latent_channels=4,
            norm_num_groups=4,
            sample_size=16,
        )
        text = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=len(tokenizer),
                hidden_size=16,
                intermediate_size=32,
                num_hidden_layers=1,
                num_attention_heads=2,
                max_position_embeddings=77,
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=0,
            )
        )
    common = dict(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        timestep_spacing="trailing",
    )
    if scheduler == "lcm":
        sched = LCMScheduler(**common, prediction_type="v_prediction", clip_sample=False, set_alpha_to_one=True)
    else:
        sched = DDIMScheduler(**common, prediction_type="v_prediction", clip_sample=False, set_alpha_to_one=False)
    pipe = MarigoldDepthPipeline(
        unet,
        vae,
        sched,
        text,
        tokenizer,
        prediction_type="depth",
        default_denoising_steps=default_steps,
        default_processing_resolution=processing_resolution,
    )
    pipe.save_pretrained(path)
    return path
