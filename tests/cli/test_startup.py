"""The package face and the command line start without importing the heavy libraries."""

import subprocess
import sys


def test_cli_help_imports_neither_torch_nor_diffusers():
    code = (
        "import sys; from click.testing import CliRunner; from primedepth.cli import main; "
        "r = CliRunner().invoke(main, ['--help']); assert r.exit_code == 0 and 'predict' in r.output, r.output; "
        "print(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_public_names_resolve_on_first_use():
    code = (
        "import sys, primedepth; assert 'torch' not in sys.modules; "
        "from primedepth import PrimeDepthPipeline, ImageLoadError; print(PrimeDepthPipeline.__module__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "primedepth.pipelines.pipeline"
