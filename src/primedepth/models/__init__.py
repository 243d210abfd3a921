"""PrimeDepth's networks, on either side of the freeze line.

``frozen/`` holds Stable Diffusion as it was trained and never updated: the VAE encoder and latent noising, the UNet
with its attention-map processors, the text encoder, and the single step that turns an image into a ``Preimage``.
``trained/`` holds everything PrimeDepth learns: the fusion convs, the refiner and the heads (``PrimeDepthLabeller``
and its ablations). Both sides share ``preimage`` (the hand-over between them), ``layout`` (channel bookkeeping),
``group_norms`` (the official normalisation rules) and ``banded`` (the low-memory kernels).
"""
