"""``PrimeDepthPipeline``: images in, affine-invariant inverse depth out, in one frozen-UNet step."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from tqdm.auto import tqdm
from transformers import CLIPTextModel, CLIPTokenizer

from ..models.frozen_sd import official_unet, official_vae
from ..models.labeller import LabellerOutput, PrimeDepthLabeller
from ..models.latent_noising import encode_and_noise, schedule_coefficients
from ..models.preimage_extractor import PreimageExtractor
from ..models.text_encoder import encode_prompts, load_clip_tokenizer
from .captioning import Blip2Captioner, CaptionCache
from .image_processor import LoadedImage, PrimeDepthImageProcessor, load_image
from .loading import MODEL_INDEX, resolve_model_dir
from .output import INVERSE_DEPTH_MEANING, PrimeDepthOutput

NOISE_MODES = ("sampled", "none")
ATTENTION_MODES = ("pooled", "naive")


def auto_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


class PrimeDepthPipeline:
    """Frozen SD 2.x (VAE encoder, UNet, OpenCLIP text tower) + the trained ``PrimeDepthLabeller``.

    ``settings`` holds the single denoising step (``scale_factor``, schedule, ``timestep``) and
    ``default_caption`` (``"auto"``, ``"none"`` or a text).
    """

    def __init__(self, vae: AutoencoderKL, unet: UNet2DConditionModel, text_encoder: CLIPTextModel,
                 tokenizer: CLIPTokenizer, labeller: PrimeDepthLabeller, settings: dict,
                 captioner=None, caption_cache: CaptionCache | None = None):
        self.vae, self.unet, self.labeller = official_vae(vae), official_unet(unet), labeller
        self.text_encoder, self.tokenizer = text_encoder, tokenizer
        self.settings = dict(settings)
        self.captioner = captioner
        self.caption_cache = caption_cache or CaptionCache(None)
        if text_encoder.config.hidden_size != unet.config.cross_attention_dim:
            raise ValueError(f"text encoder width {text_encoder.config.hidden_size} does not match the UNet's "
                             f"cross-attention width {unet.config.cross_attention_dim}")
        self.extractor = PreimageExtractor(self.unet)
        for module in self.modules.values():
            module.eval().requires_grad_(False)

    # ------------------------------------------------------------------ components

    @property
    def modules(self) -> dict[str, torch.nn.Module]:
        return {"vae": self.vae, "unet": self.unet, "text_encoder": self.text_encoder, "labeller": self.labeller}

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.unet.parameters()).dtype

    def to(self, device=None, dtype: torch.dtype | None = None) -> "PrimeDepthPipeline":
        for module in self.modules.values():
            torch.nn.Module.to(module, device=device, dtype=dtype)  # diffusers' .to() warns about every cast
        if self.captioner is not None and device is not None:
            self.captioner.device = torch.device(device)
        return self

    @classmethod
    def from_pretrained(cls, model: str, *, device=None, torch_dtype: torch.dtype | None = None,
                        cache_dir: str | None = None, local_files_only: bool = False,
                        caption_cache_file: str | Path | None = None, captioner_id: str | None = None,
                        ) -> "PrimeDepthPipeline":
        """Load ``model``: ``"tiny-random"``, a folder in our layout, or a hub repo id in our layout."""
        if str(model) == "tiny-random":
            from .tiny_random import build_tiny_random_pipeline

            pipe = build_tiny_random_pipeline()
        else:
            root = resolve_model_dir(model, cache_dir=cache_dir, local_files_only=local_files_only)
            settings = json.loads((root / MODEL_INDEX).read_text())

            def source(key: str):  # a sub-folder of the model, or a hub id / path named in model_index.json
                name = settings.get(key, key)
                return root / name if (root / name).is_dir() else name

            text_path, tok_path = source("text_encoder"), source("tokenizer")
            hub = dict(cache_dir=cache_dir, local_files_only=local_files_only)
            try:
                text_encoder = CLIPTextModel.from_pretrained(text_path, **hub)
                tokenizer = load_clip_tokenizer(tok_path, **hub)
            except OSError as err:
                raise OSError(f"text encoder / tokenizer of {root} ({text_path}, {tok_path}) could not be loaded: "
                              f"{err}\nRun `primedepth convert` with --text-encoder/--tokenizer pointing at a "
                              "local copy to embed it.") from None
            pipe = cls(
                vae=AutoencoderKL.from_pretrained(root / "vae"),
                unet=UNet2DConditionModel.from_pretrained(root / "unet"),
                text_encoder=text_encoder, tokenizer=tokenizer,
                labeller=PrimeDepthLabeller.from_pretrained(root / "labeller"), settings=settings)
        pipe.caption_cache = CaptionCache(caption_cache_file)
        if captioner_id:
            pipe.captioner = Blip2Captioner(captioner_id, cache_dir=cache_dir, local_files_only=local_files_only)
        return pipe.to(device=device or auto_device(), dtype=torch_dtype)

    def save_pretrained(self, directory: str | Path) -> None:
        root = Path(directory)
        root.mkdir(parents=True, exist_ok=True)
        self.vae.save_pretrained(root / "vae")
        self.unet.save_pretrained(root / "unet")
        self.labeller.save_pretrained(root / "labeller")
        self.text_encoder.save_pretrained(root / "text_encoder")
        self.tokenizer.save_pretrained(root / "tokenizer")
        settings = {**self.settings, "_class_name": type(self).__name__, "text_encoder": "text_encoder",
                    "tokenizer": "tokenizer"}
        (root / MODEL_INDEX).write_text(json.dumps(settings, indent=2))

    # ------------------------------------------------------------------ steps

    def captions_for(self, images: list[LoadedImage], caption: str) -> list[str]:
        """``"none"`` -> empty prompts; ``"auto"`` -> BLIP-2 captions (cached by content); otherwise the text."""
        if caption == "none":
            return [""] * len(images)
        if caption != "auto":
            return [caption] * len(images)
        keys = [img.content_hash() for img in images]
        first_index = {k: i for i, k in reversed(list(enumerate(keys)))}
        missing = [i for k, i in first_index.items() if self.caption_cache.get(k) is None]
        if missing:
            if self.captioner is None:
                self.captioner = Blip2Captioner(device=self.device)
            for i, text in zip(missing, self.captioner([images[i].pixels for i in missing])):
                self.caption_cache.put(keys[i], text)
        return [self.caption_cache.get(k) for k in keys]

    @torch.no_grad()
    def predict_tensor(self, images: torch.Tensor, context: torch.Tensor, *, generator: list[torch.Generator] | None,
                       segmentation: bool = False, attention: str = "pooled") -> LabellerOutput:
        """The model on a batch: ``images`` (B, 3, h, w) in [-1, 1] with h, w >= 8, ``context`` (B, 77, C).

        ``generator``: one per image for the posterior and t-noise draws (reproducible and independent of the batch
        composition), or None for the noise-free variant (posterior mean, no t-noise).
        """
        if attention not in ATTENTION_MODES:
            raise ValueError(f"attention must be one of {ATTENTION_MODES}, got {attention!r}")
        device, dtype = self.device, self.dtype
        images = images.to(device=device, dtype=dtype)
        s = self.settings
        sqrt_ab, sqrt_1mab = schedule_coefficients(s["beta_start"], s["beta_end"], s["num_train_timesteps"],
                                                   s["timestep"])
        noise_posterior = noise_t = None
        if generator is not None:
            latent_shape = (self.vae.config.latent_channels, *self._latent_size(images.shape[-2:]))
            draws = [(torch.randn(latent_shape, generator=g), torch.randn(latent_shape, generator=g))
                     for g in generator]
            noise_posterior = torch.stack([d[0] for d in draws]).to(device)
            noise_t = torch.stack([d[1] for d in draws]).to(device)
        latent = encode_and_noise(self.vae, images, scale_factor=s["scale_factor"], sqrt_alpha_bar=sqrt_ab,
                                  sqrt_one_minus_alpha_bar=sqrt_1mab, noise_posterior=noise_posterior,
                                  noise_t=noise_t)
        cfg = self.labeller.config
        timestep = torch.tensor([s["timestep"]], device=device)
        preimage = self.extractor(latent.x_t, timestep, context.to(device=device, dtype=dtype),
                                  self_maps=cfg.use_self_attn_maps, cross_maps=cfg.use_cross_attn_maps,
                                  naive=attention == "naive")
        return self.labeller(preimage, segmentation=segmentation)

    def _latent_size(self, size) -> tuple[int, int]:
        """The VAE encoder's output size: each stride-2 conv with (0, 1) padding maps n to (n - 2) // 2 + 1."""
        h, w = size
        for _ in range(len(self.vae.config.block_out_channels) - 1):
            h, w = (h - 2) // 2 + 1, (w - 2) // 2 + 1
        return h, w

    # ------------------------------------------------------------------ call

    def __call__(self, images, *, caption: str | None = None, seed: int = 0, noise: str = "sampled",
                 max_size: int | None = 1024, match_input_size: bool = True, segmentation: bool = False,
                 batch_size: int = 1, attention: str = "pooled", progress: bool = False) -> PrimeDepthOutput:
        """Predict affine-invariant inverse depth for one image or a list.

        images: path, PIL image, HxW[xC] numpy array, CxHxW tensor, or a list of these.
        caption: ``"auto"`` (BLIP-2, as the authors), ``"none"`` (empty prompt) or a text; default from the model.
        seed / noise: the official step samples the VAE posterior and adds t = 1 noise; we draw both from
            ``seed`` (+ the image's index), or use ``noise="none"`` for the posterior mean without noise.
        max_size: long side used for processing (never upscaled); None keeps the input size.
        match_input_size: return H x W of the input (default); False reproduces the authors' sizes.
        attention: ``"pooled"`` (fused, no N x N map) or ``"naive"`` (the authors' arithmetic).
        """
        if noise not in NOISE_MODES:
            raise ValueError(f"noise must be one of {NOISE_MODES}, got {noise!r}")
        single = not isinstance(images, (list, tuple))
        loaded = [load_image(img) for img in ([images] if single else images)]
        caption = self.settings.get("default_caption", "auto") if caption is None else caption
        processor = PrimeDepthImageProcessor(max_size=max_size, match_input_size=match_input_size)
        captions = self.captions_for(loaded, caption)
        depth_maps, seg_maps, sizes = [None] * len(loaded), [None] * len(loaded), []
        order = sorted(range(len(loaded)), key=lambda i: processor.processing_size(*loaded[i].size))
        batches, current = [], []
        for i in order:
            if current and (len(current) == batch_size or processor.processing_size(*loaded[i].size)
                            != processor.processing_size(*loaded[current[0]].size)):
                batches.append(current)
                current = []
            current.append(i)
        if current:
            batches.append(current)
        bar = tqdm(total=len(loaded), disable=not progress, desc="PrimeDepth", unit="img")
        for batch in batches:
            pixels = torch.stack([processor.preprocess(loaded[i]) for i in batch])
            context = encode_prompts(self.text_encoder, self.tokenizer, [captions[i] for i in batch])
            generators = ([torch.Generator().manual_seed(seed + i) for i in batch] if noise == "sampled" else None)
            out = self.predict_tensor(pixels, context, generator=generators, segmentation=segmentation,
                                      attention=attention)
            for j, i in enumerate(batch):
                depth_maps[i] = processor.postprocess_depth(out.depth[j].float().mean(dim=0), loaded[i].size)
                if segmentation:
                    seg_maps[i] = processor.postprocess_segmentation(out.segmentation[j].float(), loaded[i].size)
            bar.update(len(batch))
        bar.close()
        sizes = [processor.processing_size(*img.size) for img in loaded]
        metadata = {"values": INVERSE_DEPTH_MEANING, "seed": seed, "noise": noise, "caption_mode": caption,
                    "processing_sizes": sizes, "input_sizes": [img.size for img in loaded],
                    "match_input_size": match_input_size, "attention": attention, "dtype": str(self.dtype)}
        return PrimeDepthOutput(depth_maps, seg_maps if segmentation else None, captions, metadata)
