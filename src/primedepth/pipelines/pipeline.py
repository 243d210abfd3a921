"""``PrimeDepthPipeline``: images in, affine-invariant inverse depth out, in one frozen-UNet step."""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DiffusionPipeline, UNet2DConditionModel
from tqdm.auto import tqdm
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from ..constants import DEFAULT_CAPTIONER, NOISE_MODES
from ..conversion.hub_weights import resolve_model
from ..conversion.loading import MODEL_INDEX
from ..conversion.model_folder import (
    ModelError,
    check_settings,
    component_source,
    load_checked,
    note_ignored_code,
    pipeline_settings,
    read_json_object,
    read_model_index,
)
from ..conversion.model_index import FROZEN_CLASSES, model_index, write_model_index
from ..models.frozen.single_step import FrozenStableDiffusion, draw_noise
from ..models.frozen.stable_diffusion import official_unet, official_vae
from ..models.frozen.text_encoder import encode_prompts, load_clip_tokenizer, load_text_tower
from ..models.preimage import Preimage
from ..models.trained.classes import labeller_classes
from ..models.trained.labeller import LabellerOutput, PrimeDepthLabeller
from ..utils.devices import resolve_device
from ..utils.hub import cache_only
from ..utils.quiet import no_library_progress_bars
from .captioning import Blip2Captioner, CaptionCache
from .depth_anything import DepthAnything
from .ensemble import COMBINATION, NORMALISATION, average_normalised
from .image_processor import LoadedImage, PrimeDepthImageProcessor, load_image
from .metric import MetricPrior, load_prior, metric_depth
from .output import INVERSE_DEPTH_MEANING, PrimeDepthOutput
from .precision import fp32_arithmetic, precision_of, resolve_precision
from .tiling import predict_tiles, resolve_tiles
from .tiny_random import tiny_random_components

ATTENTION_MODES = ("pooled", "naive")


def load_labeller(folder: str | Path) -> torch.nn.Module:
    """The trained part, by the class recorded in its config (the BlockPreIm ablation has its own class)."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"{folder}: no labeller here (config.json missing); expected a folder written by "
            "save_pretrained, e.g. <checkpoint>/labeller"
        )
    config = read_json_object(folder / "config.json")
    name = config.get("_class_name", "PrimeDepthLabeller")
    cls = labeller_classes().get(name)
    if cls is None:
        raise ModelError(f"{folder / 'config.json'}: unknown labeller class {name!r}")
    return load_checked("labeller", folder, lambda: cls.from_config(config), lambda: cls.from_pretrained(folder))


class PrimeDepthPipeline(DiffusionPipeline):
    """Frozen SD 2.x (VAE encoder, UNet, OpenCLIP text tower) + the trained ``PrimeDepthLabeller``.

    A diffusers ``DiffusionPipeline``: its parts are registered modules (``components``), its step settings are its
    config, ``save_pretrained`` and ``set_progress_bar_config`` / ``progress_bar`` are diffusers' (model CPU offload
    is not supported, see ``enable_model_cpu_offload``). Loading goes through our ``from_pretrained`` (every file
    checked first); a saved or converted folder also loads with
    ``DiffusionPipeline.from_pretrained(folder, trust_remote_code=True)`` (``conversion.model_index`` says why the
    flag).

    ``settings`` holds the single denoising step (``scale_factor``, schedule, ``timestep``), ``default_caption``
    (``"auto"``, ``"none"`` or a text) and ``max_size``, checked as ``model_folder.read_model_index`` checks a
    folder's (``model_index.json`` holds them flat, beside the parts; ``config.settings`` here).
    """

    def __init__(
        self,
        vae: AutoencoderKL,
        unet: UNet2DConditionModel,
        text_encoder: CLIPTextModel,
        tokenizer: CLIPTokenizer,
        labeller: PrimeDepthLabeller,
        settings: dict | None = None,  # required; a default keeps it out of diffusers' list of parts
        captioner=None,
        caption_cache: CaptionCache | None = None,
    ):
        super().__init__()
        settings = check_settings(dict(settings or {}), f"{type(self).__name__} settings")
        if text_encoder.config.hidden_size != unet.config.cross_attention_dim:
            raise ModelError(
                f"the text encoder's width (hidden_size {text_encoder.config.hidden_size}) does not "
                f"match the UNet's context size (cross_attention_dim {unet.config.cross_attention_dim}): "
                "they are not parts of the same model"
            )
        self.register_modules(
            vae=official_vae(vae),
            unet=official_unet(unet),
            text_encoder=text_encoder,
            tokenizer=tokenizer,
            labeller=labeller,
        )
        self.settings = settings
        self.register_to_config(settings=pipeline_settings(self.settings))
        self.set_progress_bar_config(desc="PrimeDepth", unit="img")
        self.captioner = captioner
        self.caption_cache = caption_cache or CaptionCache(None)
        self.frozen = FrozenStableDiffusion(self.vae, self.unet, self.settings)
        self.channels_last = False  # set by optimize()
        self.allow_tf32 = False  # fp32 parts compute in IEEE fp32 (set_precision("tf32") allows TF32 on CUDA)
        self._prompt_cache: dict = {}
        self._ensemble_members: dict[str, DepthAnything] = {}
        self._metric_priors: dict = {}
        for module in self.modules.values():
            module.eval().requires_grad_(False)

    @classmethod
    def extract_init_dict(cls, config_dict: dict, **kwargs):
        """diffusers' reading of ``model_index.json`` for ``DiffusionPipeline.from_pretrained``, given the step
        settings as one ``settings`` argument and told the classes of a text tower and tokenizer that the index names
        by their folder (``conversion.model_index``). One named by hub id (a conversion that could not fetch it) is a
        ``ModelError``: diffusers loads parts from the folder only, ``PrimeDepthPipeline.from_pretrained`` fetches
        it."""
        settings = pipeline_settings(config_dict)
        config_dict = {k: v for k, v in config_dict.items() if k not in settings} | {"settings": settings}
        init_dict, unused, hidden = super().extract_init_dict(config_dict, **kwargs)
        for key in ("text_encoder", "tokenizer"):
            value = init_dict.get(key)
            if isinstance(value, str):
                if value != key:
                    raise ModelError(
                        f"{MODEL_INDEX}: {key} = {value!r} is not a folder of the model; DiffusionPipeline loads "
                        "parts from the folder only (PrimeDepthPipeline.from_pretrained fetches it)"
                    )
                init_dict[key] = list(FROZEN_CLASSES[key])
        return init_dict, unused, hidden

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

    @property
    def labeller_dtype(self) -> torch.dtype:
        return next(self.labeller.parameters()).dtype

    def optimize(
        self,
        *,
        frozen_dtype: torch.dtype | None = None,
        labeller_dtype: torch.dtype | None = None,
        channels_last: bool | None = None,
        compile: bool = False,
        drop_vae_decoder: bool = False,
        num_threads: int | None = None,
    ) -> PrimeDepthPipeline:
        """Speed / memory switches (all optional; the defaults of ``from_pretrained`` are fp32, NCHW, eager).

        frozen_dtype: dtype of the frozen VAE, UNet and text tower (e.g. ``torch.bfloat16``); their GroupNorm
            parameters stay fp32 and every GroupNorm computes in fp32, as the official code.
        labeller_dtype: dtype of the trained labeller (fusion, refiner, heads); ``torch.float32`` with a bf16
            ``frozen_dtype`` is the accurate mixed split (see docs/performance.md for the errors of each split).
        channels_last: NHWC memory format for every conv (faster oneDNN / cuDNN kernels); outputs equal within
            float rounding.
        compile: ``torch.compile`` the VAE encoder, the UNet's blocks and the labeller (first calls are slow).
        drop_vae_decoder: free the VAE decoder, which PrimeDepth never runs (about 200 MB in fp32).
        num_threads: ``torch.set_num_threads`` for CPU inference (process-wide).
        """
        if num_threads:
            torch.set_num_threads(num_threads)
        if drop_vae_decoder:
            self.vae.decoder = None
            self.vae.post_quant_conv = None
        if frozen_dtype is not None:
            for module in (self.vae, self.unet, self.text_encoder):
                torch.nn.Module.to(module, dtype=frozen_dtype)
                for sub in module.modules():
                    if isinstance(sub, torch.nn.GroupNorm):
                        sub.float()
        if labeller_dtype is not None:
            torch.nn.Module.to(self.labeller, dtype=labeller_dtype)
        if channels_last is not None:
            fmt = torch.channels_last if channels_last else torch.contiguous_format
            for module in (self.vae, self.unet, self.labeller):
                torch.nn.Module.to(module, memory_format=fmt)
            self.channels_last = bool(channels_last)
        if compile:
            self.vae.encoder.compile()
            for block in [*self.unet.down_blocks, self.unet.mid_block, *self.unet.up_blocks]:
                for sub in [*block.resnets, *(getattr(block, "attentions", None) or [])]:
                    sub.compile()
            self.labeller.compile()
        return self

    def set_precision(self, precision: str = "auto") -> PrimeDepthPipeline:
        """Switch to a named precision configuration (``primedepth.pipelines.precision.PRECISIONS``: ``"fp32"``,
        ``"tf32"``, ``"bf16-frozen"``, ``"bf16"``, ``"fp16-frozen"``, ``"fp16"``); ``"auto"`` picks the configuration
        that is safe and faster on this pipeline's device (fp32 where bf16 is not native). Call it on an fp32
        pipeline."""
        chosen = resolve_precision(precision, self.device)
        self.allow_tf32 = chosen.tf32
        return self.optimize(frozen_dtype=chosen.frozen_dtype, labeller_dtype=chosen.labeller_dtype)

    def enable_model_cpu_offload(self, gpu_id: int | None = None, device: torch.device | str | None = None):
        """Not supported: diffusers' model offload moves a part to the GPU when its ``forward`` is called, but this
        pipeline runs the parts' inner blocks (the VAE encoder, the UNet's blocks with pooled attention maps, the
        labeller's stages), so every part would stay on the CPU. For less memory use ``low_memory=True`` and a bf16
        ``set_precision`` (docs/performance.md)."""
        raise NotImplementedError(
            "PrimeDepthPipeline does not support enable_model_cpu_offload (it calls its parts' inner blocks, which "
            "the offload hooks do not see); use low_memory=True and set_precision('bf16') to save memory"
        )

    def prepare_for_inference(self, precision: str = "auto") -> PrimeDepthPipeline:
        """What every command, the app and the workers run: NHWC convolutions (about 10 % faster, outputs equal within
        float rounding), no VAE decoder (PrimeDepth never runs it; about 200 MB in fp32), then the named ``precision``
        (``set_precision``). Call it on an fp32 pipeline, as ``from_pretrained`` returns it."""
        return self.optimize(channels_last=True, drop_vae_decoder=True).set_precision(precision)

    def to(
        self, *args, device=None, dtype: torch.dtype | None = None, silence_dtype_warnings: bool = False
    ) -> PrimeDepthPipeline:
        """Move and/or cast every part in place (``to(device)``, ``to(dtype)``, ``to(device, dtype)`` as diffusers'),
        without diffusers' warnings about casting (a half-precision pipeline on the CPU is a supported choice here,
        see ``set_precision``)."""
        for arg in args:
            if isinstance(arg, torch.dtype):
                dtype = arg
            else:
                device = arg
        for module in self.modules.values():
            torch.nn.Module.to(module, device=device, dtype=dtype)
        return self

    @classmethod
    def tiny_random(cls, seed: int = 0, config: dict | None = None, tokenizer=None) -> PrimeDepthPipeline:
        """A pipeline with random weights at toy width (``tiny_random_components``): for tests and smoke runs."""
        return cls(**tiny_random_components(seed, config, tokenizer))

    @classmethod
    def from_pretrained(
        cls,
        model: str,
        *,
        device=None,
        torch_dtype: torch.dtype | None = None,
        cache_dir: str | None = None,
        local_files_only: bool = False,
        caption_cache_file: str | Path | None = None,
        captioner_id: str | None = None,
        allow_external_components: bool = False,
    ) -> PrimeDepthPipeline:
        """Load ``model``: ``"tiny-random"``, a folder in our layout, or a hub repo id in our layout.

        Every file is checked first (``ModelError`` names the file and the problem). Sub-models named in
        ``model_index.json`` must lie inside the model folder or be hub ids, unless ``allow_external_components``.
        """
        device = resolve_device(device)
        if str(model) == "tiny-random":
            pipe = cls.tiny_random()
        else:
            root = resolve_model(model, cache_dir=cache_dir, local_files_only=local_files_only)
            index = read_model_index(root)
            note_ignored_code(root)
            text_path, tok_path = (
                component_source(root, index, key, allow_external_components) for key in ("text_encoder", "tokenizer")
            )
            hub = dict(cache_dir=cache_dir, local_files_only=cache_only(local_files_only, text_path, tok_path))
            # a text tower named by hub id may download: its bars stay on
            local_text = Path(text_path).is_dir()
            with no_library_progress_bars() if local_text else contextlib.nullcontext():
                try:
                    text_encoder = load_checked(
                        "text encoder",
                        text_path,
                        lambda: CLIPTextModel(CLIPTextConfig.from_pretrained(text_path)),
                        lambda: load_text_tower(text_path, **hub),
                    )
                    tokenizer = load_clip_tokenizer(tok_path, **hub)
                except OSError as err:
                    raise OSError(
                        f"text encoder / tokenizer of {root} ({text_path}, {tok_path}) could not be loaded: "
                        f"{err}\nRun `primedepth convert` with --text-encoder/--tokenizer pointing at a "
                        "local copy to embed it."
                    ) from None
                parts = {}
                for name, part_cls in (("vae", AutoencoderKL), ("unet", UNet2DConditionModel)):
                    folder = root / name
                    parts[name] = load_checked(
                        name,
                        folder,
                        lambda c=part_cls, f=folder: c.from_config(c.load_config(f)),
                        lambda c=part_cls, f=folder: c.from_pretrained(f),
                    )
                labeller = load_labeller(root / "labeller")
            try:
                pipe = cls(
                    vae=parts["vae"],
                    unet=parts["unet"],
                    text_encoder=text_encoder,
                    tokenizer=tokenizer,
                    labeller=labeller,
                    settings=pipeline_settings(index),
                )
            except ModelError as err:
                raise ModelError(f"{root}: {err} (text encoder from {text_path})") from None
        pipe.caption_cache = CaptionCache(caption_cache_file)
        pipe.captioner = Blip2Captioner(
            captioner_id or DEFAULT_CAPTIONER, cache_dir=cache_dir, local_files_only=local_files_only
        )  # loads on first "auto" caption
        # fp32 unless asked otherwise, whatever the stored dtype (the embedded model is stored as fp16)
        return pipe.to(device=device, dtype=torch_dtype or torch.float32)

    def save_pretrained(
        self,
        save_directory: str | Path,
        safe_serialization: bool = True,
        variant: str | None = None,
        max_shard_size: int | str | None = None,
        push_to_hub: bool = False,
        **kwargs,
    ) -> None:
        """diffusers' ``save_pretrained`` (each part in its folder, safetensors), without the libraries' progress
        bars; ``model_index.json`` is written last (``save_config``), so an interrupted save leaves no folder that
        looks complete."""
        root = Path(save_directory)
        (root / MODEL_INDEX).unlink(missing_ok=True)
        root.mkdir(parents=True, exist_ok=True)
        with no_library_progress_bars():
            super().save_pretrained(
                str(root),
                safe_serialization=safe_serialization,
                variant=variant,
                max_shard_size=max_shard_size,
                push_to_hub=push_to_hub,
                **kwargs,
            )

    def save_config(self, save_directory: str | Path, push_to_hub: bool = False, **kwargs) -> None:
        """The folder's ``model_index.json`` and pipeline module, written by ``conversion.model_index`` (the one
        writer of model indexes)."""
        index = model_index(pipeline_settings(self.settings), labeller_class=type(self.labeller).__name__)
        write_model_index(save_directory, index)

    # ------------------------------------------------------------------ steps

    def captions_for(self, images: list[LoadedImage], caption: str | list[str]) -> list[str]:
        """``"none"`` -> empty prompts; ``"auto"`` -> BLIP-2 captions (cached by content; the empty prompt when
        BLIP-2 is unavailable and the captioner not ``required``); a list -> one text per image; otherwise the text
        for every image."""
        if isinstance(caption, (list, tuple)):
            if len(caption) != len(images):
                raise ValueError(f"{len(caption)} captions for {len(images)} images")
            return [str(c) for c in caption]
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
            self.captioner.device = self.device
            if getattr(self.captioner, "available", lambda: True)():  # any callable captioner is taken as ready
                for i, text in zip(missing, self.captioner([images[i].pixels for i in missing])):
                    self.caption_cache.put(keys[i], text)
        return [self.caption_cache.get(k) or "" for k in keys]

    @torch.no_grad()
    def predict_tensor(
        self,
        images: torch.Tensor,
        context: torch.Tensor,
        *,
        generator: list[torch.Generator] | None,
        segmentation: bool = False,
        attention: str = "pooled",
        low_memory: bool = False,
    ) -> LabellerOutput:
        """The model on a batch: ``images`` (B, 3, h, w) in [-1, 1] with h, w >= 8, ``context`` (B, 77, C).

        ``generator``: one per image for the posterior and t-noise draws (reproducible and independent of the batch
        composition), or None for the noise-free variant (posterior mean, no t-noise).
        ``low_memory``: run the VAE encoder's and the heads' full-resolution layers in row bands and free each
        preimage block once fused (same outputs within float rounding, much lower peak memory, somewhat slower).
        """
        noise_posterior = noise_t = None
        if generator is not None:
            noise_posterior, noise_t = draw_noise(self.frozen.latent_shape(images.shape[-2:]), generator)
        return self.predict_with_noise(
            images,
            context,
            noise_posterior,
            noise_t,
            segmentation=segmentation,
            attention=attention,
            low_memory=low_memory,
        )

    @torch.no_grad()
    def predict_with_noise(
        self,
        images: torch.Tensor,
        context: torch.Tensor,
        noise_posterior: torch.Tensor | None,
        noise_t: torch.Tensor | None,
        *,
        segmentation: bool = False,
        attention: str = "pooled",
        low_memory: bool = False,
    ) -> LabellerOutput:
        """``predict_tensor`` with given noise draws (latent-shaped, or None for none), e.g. the reference's."""
        if attention not in ATTENTION_MODES:
            raise ValueError(f"attention must be one of {ATTENTION_MODES}, got {attention!r}")
        images = images.to(device=self.device, dtype=self.dtype)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with fp32_arithmetic(self.allow_tf32):
            preimage = self.frozen.preimage(
                images,
                context,
                noise_posterior,
                noise_t,
                low_memory=low_memory,
                naive=attention == "naive",
                **self.labeller.preimage_request(),
            )
            return self.labeller(
                preimage, segmentation=segmentation, low_memory=low_memory, consume_preimage=low_memory
            )

    @torch.no_grad()
    def preimage(
        self,
        images,
        *,
        caption: str | list[str] | None = None,
        seed: int = 0,
        noise: str = "sampled",
        max_size: int | str | None = "auto",
        attention: str = "pooled",
    ) -> list[Preimage]:
        """The frozen UNet's preimage of each image, for building other heads on it: the input of every decoder
        block (``features``), the pooled self-attention and cross-attention maps of every block (``encoder_maps``,
        ``mid_maps``, ``decoder_maps``; 64 regions and 77 tokens per head, never an N x N map), the timestep
        embedding and the text context. Same preprocessing, captions and noise draws as ``__call__``; one image per
        pass, tensors on the pipeline's device.
        """
        loaded, _, captions, processor = self._inputs(images, caption, noise, max_size)
        preimages = []
        for image, text in zip(loaded, captions):
            pixels = processor.preprocess(image)[None].to(device=self.device, dtype=self.dtype)
            noises = (
                draw_noise(self.frozen.latent_shape(pixels.shape[-2:]), [torch.Generator().manual_seed(seed)])
                if noise == "sampled"
                else (None, None)
            )
            context = self._encode_prompts([text])
            with fp32_arithmetic(self.allow_tf32):
                preimages.append(self.frozen.preimage(pixels, context, *noises, naive=attention == "naive"))
        return preimages

    def _inputs(self, images, caption, noise: str, max_size, match_input_size: bool = True):
        """What ``__call__`` and ``preimage`` start from: the loaded images, the caption mode (``None``: the model's
        default), one caption per image, and the image processor (``max_size`` ``"auto"``: the model's processing
        size)."""
        if noise not in NOISE_MODES:
            raise ValueError(f"noise must be one of {NOISE_MODES}, got {noise!r}")
        loaded = [load_image(img) for img in (images if isinstance(images, (list, tuple)) else [images])]
        caption = self.settings.get("default_caption", "auto") if caption is None else caption
        if max_size == "auto":
            max_size = self.settings.get("max_size", 1024)
        processor = PrimeDepthImageProcessor(max_size=max_size, match_input_size=match_input_size)
        return loaded, caption, self.captions_for(loaded, caption), processor

    def _encode_prompts(self, prompts: list[str]) -> torch.Tensor:
        """Text-tower states per prompt, cached per distinct prompt (the empty or a fixed caption costs once)."""
        cache = self._prompt_cache
        key_dtype = (self.text_encoder.dtype, self.text_encoder.device)
        missing = [p for p in dict.fromkeys(prompts) if (p, key_dtype) not in cache]
        if missing:
            if len(cache) > 256:
                cache.clear()
            with fp32_arithmetic(self.allow_tf32):
                states_per_prompt = encode_prompts(self.text_encoder, self.tokenizer, missing)
            for p, states in zip(missing, states_per_prompt):
                cache[(p, key_dtype)] = states
        return torch.stack([cache[(p, key_dtype)] for p in prompts])

    # ------------------------------------------------------------------ call

    def __call__(
        self,
        images,
        *,
        caption: str | list[str] | None = None,
        seed: int = 0,
        noise: str = "sampled",
        max_size: int | str | None = "auto",
        match_input_size: bool = True,
        segmentation: bool = False,
        batch_size: int = 1,
        attention: str = "pooled",
        progress: bool = False,
        low_memory: bool = False,
        ensemble: str | DepthAnything | None = None,
        metric: str | MetricPrior | None = None,
        focal_px: float | None = None,
        fov: float | None = None,
        metric_correction: bool = False,
        tiles: str | int = "off",
    ) -> PrimeDepthOutput:
        """Predict affine-invariant inverse depth for one image or a list.

        images: path, PIL image, HxW[xC] numpy array, CxHxW tensor, or a list of these.
        caption: ``"auto"`` (BLIP-2, as the authors), ``"none"`` (empty prompt), a text, or one text per image;
            default from the model.
        seed / noise: the official step samples the VAE posterior and adds t = 1 noise; we draw both for each image
            from a generator seeded with ``seed`` (so an image's depth depends on the image, the model and the seed,
            not on the other images of the call or their order), or use ``noise="none"`` for the posterior mean.
        max_size: long side used for processing (never upscaled); None keeps the input size; ``"auto"`` is the
            model's setting (1024; PrimeDepth-mini: 64, its training resolution).
        match_input_size: return H x W of the input (default); False reproduces the authors' sizes.
        attention: ``"pooled"`` (fused, no N x N map) or ``"naive"`` (the authors' arithmetic).
        batch_size: images of the same processing size per forward pass (faster on GPUs; on CPUs 1 is as fast).
        low_memory: lower peak memory (preimage freed as fused, heads in row bands), slightly slower. For very
            large inputs ``max_size`` caps the processing size (default 1024); see docs/performance.md.
        ensemble: ``"depth-anything-v2[-small|-base|-large][=HUB_ID_OR_FOLDER]"`` or a loaded ``DepthAnything``:
            the output becomes the pixel-wise mean of both models' normalised maps (the paper's best method); the
            members are kept in ``output.members``.
        metric: a metric prior (``pipelines.metric``: ``"depth-pro"``, ``"depth-anything-v2-metric-indoor"``, ...,
            ``"points=FILE"``, each model with ``=HUB_ID_OR_FOLDER``) or a loaded one: ``output.metric`` holds per
            image the depth in metres fused from this prediction and the prior, its confidence and the camera.
        focal_px / fov: the camera's focal length in pixels or field of view in degrees (long side), for the
            metric depth and its camera; otherwise from EXIF, else the prior's estimate, else 60 degrees.
        metric_correction: let a dense prior bend the map by a smooth low-frequency correction after the global
            scale-and-shift fit (``outputs.metric_fusion``).
        tiles: ``"off"``, ``"auto"`` or a number of tiles along the long side: above the processing size, tiles at
            the processing size add detail at the input's resolution on top of the whole-image prediction (see
            ``primedepth.pipelines.tiling``; ``"auto"`` only for inputs at least 4x the processing size);
            ``metadata["tiling"]`` has the tile count and seconds per image (None where not tiled).
        """
        loaded, caption, captions, processor = self._inputs(images, caption, noise, max_size, match_input_size)
        tile_counts = [resolve_tiles(tiles, img.size, max(processor.processing_size(*img.size))) for img in loaded]
        tiling = [None] * len(loaded)
        depth_maps, seg_maps = [None] * len(loaded), [None] * len(loaded)
        order = sorted(range(len(loaded)), key=lambda i: processor.processing_size(*loaded[i].size))
        batches, current = [], []
        for i in order:
            if current and (
                len(current) == batch_size
                or processor.processing_size(*loaded[i].size) != processor.processing_size(*loaded[current[0]].size)
            ):
                batches.append(current)
                current = []
            current.append(i)
        if current:
            batches.append(current)
        bar = self.progress_bar(total=len(loaded)) if progress else tqdm(total=len(loaded), disable=True)
        for batch in batches:
            pixels = torch.stack([processor.preprocess(loaded[i]) for i in batch])
            context = self._encode_prompts([captions[i] for i in batch])
            generators = [torch.Generator().manual_seed(seed) for _ in batch] if noise == "sampled" else None
            out = self.predict_tensor(
                pixels,
                context,
                generator=generators,
                segmentation=segmentation,
                attention=attention,
                low_memory=low_memory,
            )
            for j, i in enumerate(batch):
                depth = out.depth[j].float().mean(dim=0)
                if tile_counts[i]:
                    depth_maps[i], tiling[i] = predict_tiles(
                        self,
                        loaded[i].pixels,
                        depth,
                        tile_counts[i],
                        context[j : j + 1],
                        tile=max(processor.processing_size(*loaded[i].size)),
                        seed=seed if noise == "sampled" else None,
                        batch_size=batch_size,
                        attention=attention,
                        low_memory=low_memory,
                        output_size=processor.output_size(loaded[i].size),
                        progress=progress,
                    )
                else:
                    depth_maps[i] = processor.postprocess_depth(depth, loaded[i].size)
                if segmentation:
                    seg_maps[i] = processor.postprocess_segmentation(out.segmentation[j].float(), loaded[i].size)
            bar.update(len(batch))
        bar.close()
        members = ensemble_info = None
        if ensemble is not None:
            depth_maps, members, ensemble_info = self._ensemble(loaded, depth_maps, ensemble)
        sizes = [processor.processing_size(*img.size) for img in loaded]
        caption_mode = "per-image" if isinstance(caption, (list, tuple)) else caption
        metadata = {
            "values": INVERSE_DEPTH_MEANING,
            "seed": seed,
            "noise": noise,
            "caption_mode": caption_mode,
            "processing_sizes": sizes,
            "input_sizes": [img.size for img in loaded],
            "match_input_size": match_input_size,
            "attention": attention,
            "dtype": str(self.dtype),
            "precision": precision_of(self),
        }
        if ensemble_info is not None:
            metadata["ensemble"] = ensemble_info
        if tiles not in (None, "off"):
            metadata["tiling"] = tiling
        metric_results = None
        if metric is not None:
            metric_results = self._metric(loaded, depth_maps, metric, focal_px, fov, metric_correction)
            metadata["metric"] = [r.metadata() for r in metric_results]
        return PrimeDepthOutput(
            depth_maps, seg_maps if segmentation else None, captions, metadata, members=members, metric=metric_results
        )

    def _ensemble(self, images: list[LoadedImage], depth_maps: list, member: str | DepthAnything):
        """The paper's ensemble: PrimeDepth's maps averaged with Depth Anything's after the common normalisation."""
        if isinstance(member, str):
            if member not in self._ensemble_members:
                self._ensemble_members[member] = DepthAnything.from_spec(member, device=self.device)
            member = self._ensemble_members[member]
        others = [member.predict(img.rgb(), d.shape) for img, d in zip(images, depth_maps)]
        combined = [average_normalised([d, o]) for d, o in zip(depth_maps, others)]
        info = {
            "members": {"primedepth": "this pipeline", member.name: member.source},
            "normalisation": NORMALISATION,
            "combination": COMBINATION,
        }
        return combined, {"primedepth": depth_maps, member.name: others}, info

    def _metric(self, images: list[LoadedImage], depth_maps: list, prior, focal_px, fov, correction) -> list:
        """Metric depth per image: the prediction fused with a metric prior (``pipelines.metric``)."""
        if isinstance(prior, str):
            if prior not in self._metric_priors:
                self._metric_priors[prior] = load_prior(prior, device=self.device)
            prior = self._metric_priors[prior]
        return [
            metric_depth(
                d,
                img.rgb(),
                prior,
                focal_px=focal_px,
                fov_deg=fov,
                image_path=img.source if Path(str(img.source)).is_file() else None,
                low_frequency=correction,
            )
            for img, d in zip(images, depth_maps)
        ]
