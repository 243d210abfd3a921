"""Depth for many image files: batches with a per-image fallback, the writers, resume and the run's account.

``predict_in_batches`` is the one way a group of images goes through the pipeline (``primedepth predict``, the shard
workers, the app): the group is predicted together, and when that fails each image is predicted alone, so a bad
image is named and does not take its batch-mates down with it. ``plan_files`` decides which inputs still need work
(outputs of ours exist: skipped; an output would replace a file we did not write: refused), and ``predict_files``
predicts and writes them, recording every output in the folder's manifest (``outputs.manifest``) so that a rerun
resumes. Failures are collected, never raised: one unreadable image, one missing sparse-depth file or one output
clash never stops the run; a failed write (disk full, folder gone) does, as no later image could do better.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..outputs.alignment import SparseDepthError
from ..outputs.formats import MAP_FORMATS
from ..outputs.manifest import OutputClashError, OutputManifest
from ..outputs.products import OutputOptions, product_writers
from ..outputs.writers import output_paths, write_prediction
from ..utils.atomic import remove_stale_temps


def predict_in_batches(
    pipe, images: Sequence, batch_size: int, options: dict
) -> Iterator[tuple[list[int], object | None, Exception | None]]:
    """Run ``images`` through ``pipe`` together; if that raises ``ValueError`` / ``RuntimeError``, run each alone.

    Yields ``(indices, output, None)`` for each group that ran (``output.inverse_depth[k]`` belongs to
    ``images[indices[k]]``) and ``([i], None, error)`` for each image that failed on its own. Other errors (an
    ``OSError``: a caption model or text encoder that cannot be loaded, which every image would meet) propagate.
    A consumer may stop early (a failed write); the remaining images are then not predicted."""
    everything = list(range(len(images)))
    if not everything:
        return
    groups = [everything] if len(everything) == 1 else [everything, *[[i] for i in everything]]
    for group in groups:
        try:
            out = pipe([images[i] for i in group], batch_size=batch_size, **options)
        except (ValueError, RuntimeError) as err:
            if len(group) == 1:
                yield group, None, err
            continue
        yield group, out, None
        if group is everything:
            return  # the whole batch is done


@dataclass
class FilePlan:
    """What ``predict_files`` is to do in ``output_dir``: the ``(file, stem)`` pairs to compute, how many were
    skipped because their outputs exist, and the inputs already known to fail (one message each)."""

    output_dir: Path
    formats: list[str]
    manifest: OutputManifest
    todo: list[tuple[Path, Path]]
    skipped: int = 0
    failures: list[str] = field(default_factory=list)


def plan_files(
    items: list[tuple[Path, Path]],
    output_dir: str | Path,
    formats: list[str],
    overwrite: bool = False,
    failures: Sequence[str] = (),
) -> FilePlan:
    """Plan ``(file, stem)`` items (``cli.inputs.collect_inputs``) into ``output_dir``; ``failures``: inputs that were
    already refused while listing. Removes the temporaries of killed runs."""
    output_dir = Path(output_dir)
    remove_stale_temps(output_dir)  # temporaries of killed runs
    manifest = OutputManifest(output_dir, inputs=[f for f, _ in items])  # what our runs wrote there
    todo, skipped, refused = manifest.plan(items, lambda stem: output_paths(output_dir / stem, formats), overwrite)
    return FilePlan(output_dir, list(formats), manifest, todo, skipped, [*failures, *refused])


@dataclass
class PredictFilesResult:
    """The account of a ``predict_files`` run. ``write_error``: the output that could not be written (the run
    stopped there); ``interrupted``: stopped by Ctrl-C (finished outputs are complete)."""

    written: int
    skipped: int
    todo: int
    failures: list[str]
    write_error: str | None = None
    interrupted: bool = False

    @property
    def status(self) -> str:
        """``"ok"``, ``"inputs failed"`` or ``"output error"``, the worst that happened (the exit code's meaning)."""
        return "output error" if self.write_error else "inputs failed" if self.failures else "ok"

    def summary(self) -> list[str]:
        """The run's closing lines: the error that stopped it, the counts, then one line per failed input."""
        lines = [f"error: {self.write_error}; stopped"] if self.write_error else []
        left = f", {self.todo - self.written} not done" if self.write_error else ""
        lines.append(
            f"done: {self.written} written, {self.skipped} skipped (outputs exist), {len(self.failures)} failed{left}"
        )
        return lines + [f"  failed: {failure}" for failure in self.failures]


def _stderr(line: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(line, file=sys.stderr)


def predict_files(
    pipe,
    plan: FilePlan,
    *,
    options: dict,
    products: OutputOptions | None = None,
    batch_size: int = 1,
    metadata: dict | None = None,
    save_members: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = _stderr,
) -> PredictFilesResult:
    """Predict ``plan.todo`` with ``pipe`` (``options``: the pipeline call's keyword arguments) and write
    ``plan.formats`` for each image under ``plan.output_dir / stem``.

    ``products``: how depth, float and 3D products are made (``outputs.products``; with ``align_to``, an image
    without its sparse-depth file fails); ``metadata`` goes into the files that carry it (model, licences);
    ``save_members`` also writes each ensemble member's maps (``NAME.<member>.*``). Notes of the writers and the
    first tiling announcement go to ``log``. Raises ``OSError`` when the pipeline cannot run at all (a caption model
    or text encoder that cannot be loaded): every image would fail."""
    from tqdm.auto import tqdm

    from ..pipelines.image_processor import ImageLoadError, load_image
    from ..pipelines.tiling import AUTO_MIN_RATIO

    products = products or OutputOptions()
    output_dir, formats, todo = plan.output_dir, plan.formats, plan.todo
    result = PredictFilesResult(0, plan.skipped, len(todo), list(plan.failures))
    failures = result.failures
    tiles = options.get("tiles")
    announced = []

    def announce_tiling(out):
        """One line, the first time ``auto`` tiles an image."""
        tiled = [info for info in out.metadata.get("tiling") or [] if info]
        if tiles == "auto" and tiled and not announced:
            announced.append(True)
            log(
                f"tiles: inputs of at least {AUTO_MIN_RATIO}x the processing size are predicted in "
                f"{tiled[0]['tiles']} tiles on top of the whole-image prediction ({tiled[0]['seconds']:.1f} s for "
                "the first); --tiles off for one whole-image prediction"
            )

    def write(out, k, img, stem) -> bool:
        """Write image ``img``'s outputs (``out``'s ``k``-th); False when the disk failed (stop the run)."""
        seg = out.segmentation[k] if out.segmentation is not None else None
        sparse = products.sparse_file(stem)
        try:
            if products.align_to is not None and sparse is None:
                raise SparseDepthError(f"{products.align_to}: no {stem}.npy / .png / .csv for this image")
            extra, notes = product_writers(
                formats,
                out.inverse_depth[k],
                img,
                products,
                sparse,
                metric=out.metric[k] if out.metric else None,
                metadata=metadata,
            )
        except SparseDepthError as err:
            failures.append(f"{img.source}: {err}")
            return True
        for line in notes:
            log(f"{img.source}: {line}")
        try:
            write_prediction(
                output_dir / stem,
                formats,
                out.inverse_depth[k],
                seg,
                cmap=products.cmap,
                product_writers=extra,
                manifest=plan.manifest,
            )
            if save_members and out.members:
                member_formats = [f for f in formats if f in MAP_FORMATS]
                for name, maps in out.members.items():
                    member_stem = output_dir / stem.parent / f"{stem.name}.{name}"
                    write_prediction(member_stem, member_formats, maps[k], cmap=products.cmap, manifest=plan.manifest)
        except OutputClashError as err:
            failures.append(f"{img.source}: {err}")
            return True
        except OSError as err:  # disk full, folder gone or read-only: no later image can do better
            result.write_error = f"{err.filename or output_dir / stem}: cannot write ({err.strerror or err})"
            return False
        result.written += 1
        return True

    bar = tqdm(total=len(todo), desc="predict", unit="img", disable=not (todo and progress))
    try:
        for start in range(0, len(todo), batch_size):
            batch = []
            for file, stem in todo[start : start + batch_size]:
                try:
                    batch.append((load_image(file), stem))
                except ImageLoadError as err:
                    failures.append(str(err))
                    bar.update(1)
            for group, out, error in predict_in_batches(pipe, [img for img, _ in batch], batch_size, options):
                if error is not None:
                    failures.append(f"{batch[group[0]][0].source}: prediction failed ({error})")
                    bar.update(1)
                    continue
                announce_tiling(out)
                for k, i in enumerate(group):
                    if not write(out, k, *batch[i]):
                        break
                    bar.update(1)
                if result.write_error:
                    break
            if result.write_error:
                break
    except KeyboardInterrupt:
        result.interrupted = True
    finally:
        bar.close()
    if not result.interrupted:
        remove_stale_temps(output_dir)  # also those of runs killed while this one ran
    return result
