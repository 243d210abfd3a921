"""The benchmark's outputs: one markdown table per resolution, the JSON records, the time/memory plot and the
machine description that goes with them."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import torch


def _mib(n) -> str:
    return f"{n / 2**20:,.0f}"


def markdown_table(results: list[dict], reference: str = "primedepth") -> str:
    """One table per resolution; ``vs ours`` = contender time / our time (how many times slower than ours),
    activation ratio = contender activations / ours."""
    lines = []
    for res in sorted({r["resolution"] for r in results}):
        rows = [r for r in results if r["resolution"] == res]
        ours = next((r for r in rows if r["contender"] == reference and "error" not in r), None)
        lines += [
            f"**{res} x {res}**",
            "",
            "| contender | s / image | time vs ours | CPU s / image | CPU time vs ours | peak MiB | activation MiB "
            "| act. vs ours | weights MiB | notes |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for r in rows:
            if "error" in r:
                lines.append(f"| {r['contender']} | — | — | — | — | — | — | — | — | {r['error']} |")
                continue
            ratio = f"{r['seconds'] / ours['seconds']:.2f}x" if ours else "—"
            act = (
                f"{r['activation_bytes'] / ours['activation_bytes']:.2f}x" if ours and ours["activation_bytes"] else "—"
            )
            cpu = r.get("cpu_seconds")
            cpu_ratio = f"{cpu / ours['cpu_seconds']:.2f}x" if ours and cpu and ours.get("cpu_seconds") else "—"
            cpu = f"{cpu:.3g}" if cpu else "—"
            lines.append(
                f"| {r['label']} | {r['seconds']:.3g} | {ratio} | {cpu} | {cpu_ratio} | {_mib(r['peak_bytes'])} | "
                f"{_mib(r['activation_bytes'])} | {act} | {_mib(r['weights_bytes'])} | {r.get('notes', '')} |"
            )
        lines.append("")
    return "\n".join(lines)


def save_json(results: list[dict], path: str | Path, meta: dict | None = None) -> None:
    Path(path).write_text(json.dumps({"meta": meta or {}, "results": results}, indent=2))


def plot(results: list[dict], path: str | Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(12, 4.5))
    names = list(dict.fromkeys(r["contender"] for r in results if "error" not in r))
    for name in names:
        rows = sorted(
            (r for r in results if r["contender"] == name and "error" not in r), key=lambda r: r["resolution"]
        )
        xs = [r["resolution"] for r in rows]
        style = "--" if rows[0].get("derived") else "-"
        ax_t.plot(xs, [r["seconds"] for r in rows], style, marker="o", label=name)
        if not rows[0].get("derived"):
            ax_m.plot(xs, [r["activation_bytes"] / 2**20 for r in rows], marker="o", label=name)
    for ax, ylabel in ((ax_t, "seconds per image (log)"), (ax_m, "activation memory, MiB (log)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("image side (pixels)")
        ax.set_ylabel(ylabel)
        ax.set_xticks(sorted({r["resolution"] for r in results}))
        ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.grid(True, which="both", alpha=0.3)
    ax_t.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def machine_description(device: str) -> dict:
    meta = dict(
        device=device,
        torch=torch.__version__,
        python=platform.python_version(),
        cpus=os.cpu_count(),
        threads=torch.get_num_threads(),
        platform=platform.platform(),
    )
    try:
        meta["cpu"] = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
        meta["load_average_at_start"] = os.getloadavg()
    except (OSError, StopIteration):
        pass
    if device.startswith("cuda") and torch.cuda.is_available():
        meta["gpu"] = torch.cuda.get_device_name()
    return meta


def write_report(
    results: list[dict], output_dir: str | Path, meta: dict, plot_title: str | None = None
) -> tuple[str, list[Path]]:
    """``results.json``, ``results.md`` and (with ``plot_title``) ``bench.png`` in ``output_dir``; returns the
    markdown table and the paths written."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = markdown_table(results)
    save_json(results, out / "results.json", meta)
    (out / "results.md").write_text(table)
    paths = [out / "results.json", out / "results.md"]
    if plot_title is not None:
        plot(results, out / "bench.png", title=plot_title)
        paths.append(out / "bench.png")
    return table, paths
