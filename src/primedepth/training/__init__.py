"""PrimeDepth training: losses, config, trainer, EMA and checkpointing."""
