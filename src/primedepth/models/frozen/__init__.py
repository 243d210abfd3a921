"""The frozen side: Stable Diffusion 2.x run once at t = 1, from an image to its preimage; nothing here is trained."""
