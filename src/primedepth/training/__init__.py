"""PrimeDepth training: losses, config, trainer, EMA and checkpointing (project issue 4)."""
