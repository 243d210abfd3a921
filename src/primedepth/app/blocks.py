"""The page: a Gradio Blocks app over ``primedepth.app.predict`` (image tab) and ``primedepth.app.video`` (video
tab).

What it serves: only files in the app's own temporary folder (uploads, examples and results; Gradio's cache is
pointed there by ``launch``). Every prediction runs in one queue slot shared by all visitors and tabs
(``concurrency_id="device"``, limit 1), so two visitors never run two models at once on one device. Errors the user
can act on are shown as messages in the page (``gr.Error``), never as a traceback.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr
from PIL import Image

from ..conversion.loading import WeightsNotFoundError
from ..jobs.video import VideoReadError
from ..outputs.colour import DEFAULT_CMAP, colour_bar_strip
from ..pipelines.image_processor import ImageLoadError
from ..utils.atomic import atomic_path
from .models import ModelRegistry
from .predict import DEFAULT_DEPTH_RANGE, InputRejected, predict_image
from .results import upload_cache_policy
from .video import predict_clip

DEVICE_QUEUE = "device"
MAX_PROCESSING_SIZE = 2048
LOCAL_FONTS = {"font": ["ui-sans-serif", "system-ui", "sans-serif"], "font_mono": ["ui-monospace", "monospace"]}

# The 3D view opens on the photo's axis, a step behind where it was taken (Babylon's orbit camera around the mesh's
# centre: longitude 90 deg, latitude 90 deg, radius 1.6 where the view mesh is scaled so that the photo's camera is 1
# from that centre; the viewer's field of view is narrower than a photo's): the mesh then looks like the photo, and
# dragging turns it to show the depth. The viewer's own default looks at it from far above, a small wedge.
VIEW_CAMERA = (90, 90, 1.6)


def undecoded_upload(image: gr.Image) -> gr.Image:
    """Make ``image`` hand the function the uploaded file itself, undecoded: the pipeline's own loader then reads it
    as ``primedepth predict`` does (EXIF, 16-bit, alpha) and names the problem when the file is not an image.
    Gradio still checks that the path is an upload before this runs. (An instance attribute, not a subclass:
    Gradio's component metaclass writes a stub file next to the module of every subclass.)"""
    decode = image.preprocess
    image.preprocess = lambda payload: payload.path if payload is not None and payload.path else decode(payload)
    return image


def optional_checkbox(model, elem_id: str, label: str) -> gr.Checkbox:
    """An unticked checkbox for a model the server may not have loaded (the ensemble member, the metric prior):
    shown only when ``model`` is there."""
    return gr.Checkbox(False, visible=model is not None, elem_id=elem_id, label=label)


def page_error(err: Exception) -> gr.Error:
    return gr.Error(str(err), duration=None, print_exception=False)


def build_app(
    registry: ModelRegistry, *, workdir: Path, max_pixels: int, max_video_frames: int = 300, examples: list[Path] = ()
) -> gr.Blocks:
    """The Blocks app; ``workdir`` receives every result, ``examples`` are image files offered under the input;
    ``max_video_frames`` bounds the frames one video request may ask for."""
    default = registry.default
    colour_bar = workdir / "colour-bar.png"
    with atomic_path(colour_bar) as tmp:
        Image.fromarray(colour_bar_strip(512, DEFAULT_CMAP)).save(tmp)

    def run_image(
        path, model, caption_mode, caption_text, max_size, near, far, ensemble=False, metric=False, tiles="auto"
    ):
        if not path:
            raise gr.Error("upload an image first (drop a file, paste one, or pick an example)", print_exception=False)
        if not 0 <= int(max_size) <= MAX_PROCESSING_SIZE:
            raise gr.Error(f"processing size must lie in [0, {MAX_PROCESSING_SIZE}]", print_exception=False)
        try:
            result = predict_image(
                registry,
                path,
                model=model,
                caption_mode=caption_mode,
                caption_text=caption_text,
                max_size=int(max_size),
                depth_range=(near, far),
                workdir=workdir,
                max_pixels=max_pixels,
                ensemble=bool(ensemble),
                metric=bool(metric),
                tiles=tiles if tiles in ("auto", "off") else int(tiles),
            )
        except (InputRejected, ImageLoadError, WeightsNotFoundError, OSError, ValueError, RuntimeError) as err:
            raise page_error(err) from None
        return (
            str(result.color),
            result.label,
            (result.rgb, str(result.color)),
            str(result.view_glb) if result.view_glb else None,
            [str(p) for p in result.downloads],
        )

    def run_video(path, model, stride, max_frames, temporal, side, progress=gr.Progress()):  # noqa: B008 (Gradio's way)
        if not path:
            raise gr.Error("upload a video first", print_exception=False)
        progress(0, desc="reading the clip")
        try:
            result = predict_clip(
                registry,
                path,
                model=model,
                stride=int(stride),
                max_frames=int(max_frames),
                temporal=temporal,
                side_by_side=side,
                workdir=workdir,
                max_pixels=max_pixels,
                frame_limit=max_video_frames,
                on_progress=lambda done, total: progress((done, total), desc="frames", unit="frame"),
            )
        except (InputRejected, VideoReadError, WeightsNotFoundError, OSError, ValueError, RuntimeError) as err:
            raise page_error(err) from None
        return (
            str(result.video),
            str(result.side_by_side) if result.side_by_side else None,
            result.label,
            [str(p) for p in result.downloads],
        )

    def model_defaults(model):
        choice = registry.choice(model)
        return gr.update(value=choice.default_caption), gr.update(value=choice.default_max_size)

    with gr.Blocks(title="PrimeDepth", analytics_enabled=False, delete_cache=upload_cache_policy(workdir)) as app:
        gr.Markdown(
            "# PrimeDepth\nZero-shot monocular depth from one step of a frozen Stable Diffusion. "
            "Drop or paste a photo, pick a model, and download the depth."
        )
        with gr.Tab("Image"), gr.Row():
            with gr.Column():
                image = undecoded_upload(
                    gr.Image(
                        label="Image",
                        type="filepath",
                        image_mode=None,
                        sources=["upload", "clipboard"],
                        elem_id="input-image",
                    )
                )
                model = gr.Dropdown(
                    [c.name for c in registry.choices.values()], value=default.name, label="Model", elem_id="model"
                )
                caption_mode = gr.Radio(
                    ["none", "auto", "text"],
                    value=default.default_caption,
                    label="Caption (none: empty prompt; auto: BLIP-2, as the authors; text)",
                    elem_id="caption-mode",
                )
                caption_text = gr.Textbox(
                    label="Caption text", visible=default.default_caption == "text", elem_id="caption-text"
                )
                max_size = gr.Slider(
                    0,
                    MAX_PROCESSING_SIZE,
                    value=default.default_max_size,
                    step=8,
                    elem_id="max-size",
                    label="Processing size, long side in px (starts at the model's own; 0 = the input's size, "
                    "as --max-size 0)",
                )
                member = registry.ensemble_member
                ensemble = optional_checkbox(
                    member,
                    "ensemble",
                    f"Average with {member.name if member else 'Depth Anything'} "
                    "(the paper's best method: both maps normalised, then averaged)",
                )
                prior = registry.metric_prior
                metric = optional_checkbox(
                    prior,
                    "metric",
                    f"Metres: fuse with {prior.name if prior else 'a metric prior'} (its scale and camera, "
                    "PrimeDepth's detail; replaces the assumed range below)",
                )
                tiles = gr.Dropdown(
                    ["auto", "off", "2", "3", "4", "6", "8"],
                    value="auto",
                    elem_id="tiles",
                    label="Tiles along the long side (detail at the input's resolution; auto: inputs at least 4x "
                    "the processing size)",
                )
                with gr.Accordion("3D files", open=False):
                    gr.Markdown(
                        "The prediction is affine-invariant: it has no metric scale. The point cloud "
                        "and mesh use the depth range you state here, an assumption, not a measurement."
                    )
                    with gr.Row():
                        near = gr.Number(
                            DEFAULT_DEPTH_RANGE[0], label="nearest depth (m)", minimum=0.001, elem_id="near"
                        )
                        far = gr.Number(
                            DEFAULT_DEPTH_RANGE[1], label="farthest depth (m)", minimum=0.001, elem_id="far"
                        )
                run = gr.Button("Predict depth", variant="primary", elem_id="predict")
                if examples:
                    gr.Examples(
                        [[str(p)] for p in examples],
                        inputs=[image],
                        label="Held-out rendered scenes (never seen in training)",
                    )
            with gr.Column():
                depth = gr.Image(
                    label="Depth (near = warm)", type="filepath", format="png", interactive=False, elem_id="depth"
                )
                gr.Image(
                    str(colour_bar),
                    show_label=False,
                    interactive=False,
                    container=False,
                    height=24,
                    buttons=[],
                    elem_id="colour-bar",
                )
                label = gr.Markdown(label="What ran", elem_id="run-label")
                compare = gr.ImageSlider(
                    label="RGB | depth", type="filepath", format="png", interactive=False, elem_id="compare"
                )
                view = gr.Model3D(
                    label="3D view (mesh, assumed depth range)",
                    clear_color=(1, 1, 1, 1),
                    camera_position=VIEW_CAMERA,
                    elem_id="view-3d",
                )
                downloads = gr.File(label="Downloads", file_count="multiple", interactive=False, elem_id="downloads")
        with gr.Tab("Video"), gr.Row():
            with gr.Column():
                clip = gr.Video(label="Clip", sources=["upload"], elem_id="input-video")
                video_model = gr.Dropdown(
                    [c.name for c in registry.choices.values()],
                    value=default.name,
                    label="Model",
                    elem_id="video-model",
                )
                with gr.Row():
                    stride = gr.Number(1, precision=0, minimum=1, label="frame stride", elem_id="stride")
                    max_frames = gr.Number(
                        min(60, max_video_frames),
                        precision=0,
                        minimum=1,
                        maximum=max_video_frames,
                        label=f"frames (at most {max_video_frames})",
                        elem_id="max-frames",
                    )
                temporal = gr.Radio(
                    ["flow", "affine", "off"],
                    value="flow",
                    label="temporal fusion (flow: average along optical-flow tracks; affine: fit each frame's "
                    "scale/shift to the previous frames; off: frames as predicted, they flicker)",
                    elem_id="temporal",
                )
                side = gr.Checkbox(True, label="also an RGB | depth video", elem_id="side")
                run_clip = gr.Button("Predict depth video", variant="primary", elem_id="predict-video")
            with gr.Column():
                depth_video = gr.Video(label="Depth video (near = warm)", interactive=False, elem_id="depth-video")
                side_video = gr.Video(label="RGB | depth", interactive=False, elem_id="side-video")
                video_label = gr.Markdown(label="What ran", elem_id="video-label")
                video_downloads = gr.File(
                    label="Downloads", file_count="multiple", interactive=False, elem_id="video-downloads"
                )
        model.change(model_defaults, inputs=model, outputs=[caption_mode, max_size], api_name=False, queue=False)
        caption_mode.change(
            lambda mode: gr.update(visible=mode == "text"),
            inputs=caption_mode,
            outputs=caption_text,
            api_name=False,
            queue=False,
        )
        run.click(
            run_image,
            inputs=[image, model, caption_mode, caption_text, max_size, near, far, ensemble, metric, tiles],
            outputs=[depth, label, compare, view, downloads],
            api_name="predict_image",
            concurrency_id=DEVICE_QUEUE,
            concurrency_limit=1,
        )
        run_clip.click(
            run_video,
            inputs=[clip, video_model, stride, max_frames, temporal, side],
            outputs=[depth_video, side_video, video_label, video_downloads],
            api_name="predict_video",
            concurrency_id=DEVICE_QUEUE,
            concurrency_limit=1,
        )
    app.queue(default_concurrency_limit=1)
    return app
