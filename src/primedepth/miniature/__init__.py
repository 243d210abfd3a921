"""The miniature world: procedurally rendered scenes with exact depth, the mini Stable Diffusion trained on them,
PrimeDepth-mini's held-out demo and its precision study."""
