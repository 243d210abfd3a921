"""The trained side: fusion of the preimage into the refiner decoder, and the depth and segmentation heads."""
