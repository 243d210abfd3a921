"""Library progress bars off while our own code loads or saves components: a model folder's parts load and save in
well under a second each, and transformers' and diffusers' bars for them only bury the one line a command prints.
Downloads from the hub happen outside these blocks and keep their bars."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from diffusers.utils import logging as diffusers_logging
from huggingface_hub import utils as hub_utils
from transformers.utils import logging as transformers_logging


@contextmanager
def no_library_progress_bars() -> Iterator[None]:
    """transformers', diffusers' and huggingface_hub's progress bars off for the block, restored after it."""
    transformers_on = transformers_logging.is_progress_bar_enabled()
    diffusers_on = diffusers_logging.is_progress_bar_enabled()
    hub_off = hub_utils.are_progress_bars_disabled()
    transformers_logging.disable_progress_bar()  # also switches huggingface_hub's off
    diffusers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if transformers_on:
            transformers_logging.enable_progress_bar()
        if diffusers_on:
            diffusers_logging.enable_progress_bar()
        (hub_utils.disable_progress_bars if hub_off else hub_utils.enable_progress_bars)()
