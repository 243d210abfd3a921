"""Dataset-scale inference over WebDataset shards: one shard = one job, run in this process (or sharded over
``accelerate launch`` processes) or as a Ray Data pipeline (``ray_engine``)."""
