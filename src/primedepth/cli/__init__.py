"""The ``primedepth`` command. Sub-commands live in their own modules and are imported only when used, so that
``primedepth --help`` stays fast and one command's heavy imports never slow another."""

from __future__ import annotations

import importlib
import importlib.util

import click

COMMANDS = {
    "predict": "primedepth.cli.predict_cmd:command",
    "video": "primedepth.cli.video_cmd:command",
    "demo": "primedepth.cli.demo_cmd:command",
    "convert": "primedepth.cli.convert_cmd:command",
    "verify-reference": "primedepth.cli.verify_cmd:command",
    "eval": "primedepth.cli.eval_cmd:command",
    "train": "primedepth.cli.train_cmd:command",
    "train-mini-sd": "primedepth.cli.train_mini_sd_cmd:command",
    "pseudo-label": "primedepth.cli.pseudo_label_cmd:command",
    "bench": "primedepth.cli.bench_cmd:command",
    "export": "primedepth.cli.export_cmd:command",
    "app": "primedepth.cli.app_cmd:command",
}


def _available(spec: str) -> bool:
    return importlib.util.find_spec(spec.split(":")[0]) is not None


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(name for name, spec in COMMANDS.items() if _available(spec))

    def get_command(self, ctx, name):
        spec = COMMANDS.get(name)
        if spec is None or not _available(spec):
            return None
        module, attr = spec.split(":")
        return getattr(importlib.import_module(module), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="primedepth")
def main():
    """PrimeDepth: zero-shot monocular depth from the preimage of a frozen Stable Diffusion."""


if __name__ == "__main__":
    main()
