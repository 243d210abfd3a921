"""PrimeDepth: zero-shot monocular depth from the preimage of a frozen Stable Diffusion, in one step."""

from .models.labeller import PrimeDepthLabeller
from .pipelines.image_processor import ImageLoadError, PrimeDepthImageProcessor
from .pipelines.output import PrimeDepthOutput
from .pipelines.pipeline import PrimeDepthPipeline

__all__ = ["PrimeDepthPipeline", "PrimeDepthOutput", "PrimeDepthLabeller", "PrimeDepthImageProcessor",
           "ImageLoadError"]
