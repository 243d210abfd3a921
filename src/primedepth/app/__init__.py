"""``primedepth app``: a Gradio web app over the same pipeline and writers as the command line."""

from .server import launch

__all__ = ["launch"]
