"""Starting the app: its own temporary folder (the only place it serves files from), the example scenes, Gradio's
server, then the default model loaded in the background, with the upload limit, bound to loopback unless told
otherwise."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ..data.scenes import held_out_scenes
from ..utils.atomic import atomic_path
from . import results


@dataclass(frozen=True)
class AppLimits:
    """What one visitor may ask of the app: the largest upload, image (width x height) and video request; and
    how long (minutes) and how much (MB in all) the results are kept while the app runs."""

    upload_mb: int = 100
    pixels: int = 25_000_000
    video_frames: int = 300
    results_minutes: int = results.DEFAULT_MAX_AGE_MIN
    results_mb: int = results.DEFAULT_MAX_MB


EXIT_SIGNALS = ("SIGTERM", "SIGHUP", "SIGINT")


def remove_on_exit(folder: Path) -> None:
    """Remove ``folder`` at a normal exit and on SIGTERM / SIGHUP / SIGINT (whose default actions would skip
    ``atexit``): the handler removes it, then the process ends with the signal's usual status."""
    atexit.register(shutil.rmtree, folder, True)

    def handler(signum, frame):
        shutil.rmtree(folder, ignore_errors=True)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    for name in EXIT_SIGNALS:
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), handler)


def write_examples(folder: Path, count: int = 3, resolution: int = 192) -> list[Path]:
    """Held-out rendered scenes (those ``primedepth demo`` scores: never in the training stream) as PNG files."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, scene in enumerate(held_out_scenes(count, resolution)):
        path = folder / f"held-out-scene-{i}.png"
        with atomic_path(path) as tmp:
            Image.fromarray(scene.image).save(tmp)
        paths.append(path)
    return paths


def _warm_up(registry) -> None:
    try:
        registry.warm_up()
    except (OSError, ValueError, RuntimeError) as err:  # shown again, in the page, when someone uses that model
        print(f"warning: {registry.default.name} could not be loaded: {err}", file=sys.stderr)


def launch(
    models: list[str] | tuple[str, ...] = (),
    *,
    host: str = "127.0.0.1",
    port: int = 7860,
    share: bool = False,
    device: str | None = None,
    limits: AppLimits = AppLimits(),
    local_files_only: bool = False,
    examples: int = 3,
    ensemble: str | None = None,
    block: bool = True,
    metric: str | None = None,
):
    """Serve the app on ``host:port`` (``share`` adds a public Gradio link). Returns the launched Blocks when
    ``block`` is False; otherwise serves until interrupted. ``ensemble``: a Depth Anything spec
    (``depth-anything-v2[-small|-base|-large][=HUB_ID_OR_FOLDER]``) whose weights are loaded now, to offer the
    ensemble toggle; ``metric``: a metric prior spec (``pipelines.metric``) loaded now, to offer depth in metres.
    The temporary folder is removed at exit (and, when ``block``, on an exit signal); results are kept within
    ``limits``' age and size."""
    workdir = Path(tempfile.mkdtemp(prefix="primedepth-app-")).resolve()
    if block and threading.current_thread() is threading.main_thread():
        remove_on_exit(workdir)
    else:
        atexit.register(shutil.rmtree, workdir, True)
    store = results.configure(workdir, limits.results_minutes * 60, limits.results_mb * 2**20)
    # Gradio's upload cache and example cache live in the app's folder, so that is all it can serve.
    os.environ["GRADIO_TEMP_DIR"] = str(workdir)
    os.environ["GRADIO_EXAMPLES_CACHE"] = str(workdir / "examples-cache")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

    import gradio as gr

    from .blocks import LOCAL_FONTS, build_app
    from .models import ModelRegistry, available_models

    member = None
    if ensemble:
        from ..pipelines.depth_anything import DepthAnything

        member = DepthAnything.from_spec(ensemble, device=device or "cpu", local_files_only=local_files_only)
    prior = None
    if metric:
        from ..pipelines.metric import load_prior

        prior = load_prior(metric, device=device or "cpu", local_files_only=local_files_only)
    registry = ModelRegistry(
        available_models(list(models)),
        device=device,
        local_files_only=local_files_only,
        ensemble_member=member,
        metric_prior=prior,
    )
    app = build_app(
        registry,
        workdir=workdir,
        max_pixels=limits.pixels,
        max_video_frames=limits.video_frames,
        examples=write_examples(workdir / "examples", examples) if examples else [],
    )
    app.launch(
        server_name=host,
        server_port=port,
        share=share,
        max_file_size=f"{limits.upload_mb}mb",
        ssr_mode=False,
        show_error=False,
        prevent_thread_lock=True,
        quiet=True,  # Gradio's own lines end with "set `share=True` in `launch()`": ours name the option
        theme=gr.themes.Default(**LOCAL_FONTS),
        footer_links=["api"],
    )
    print(f"* Running on local URL:  {app.local_url}", flush=True)  # a public URL is printed by Gradio itself
    if not share:
        print("* For a temporary public link, start the app with --share.", flush=True)
    # The page answers first; the default model then loads while the visitor picks an image.
    threading.Thread(target=_warm_up, args=(registry,), daemon=True).start()
    store.start_timer()
    if block:
        app.block_thread()
    return app
