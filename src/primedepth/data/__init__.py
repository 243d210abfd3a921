"""Training data for PrimeDepth: procedural scenes, Hypersim, Virtual KITTI 2, pseudo-labelled folders, mixing."""
