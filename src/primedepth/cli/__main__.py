"""``python -m primedepth.cli`` (e.g. under ``accelerate launch -m``)."""

from . import main

main()
