"""Random OpenCLIP text-tower weights in the official checkpoint's key layout."""

import torch


def open_clip_text_tower(width=128, layers=2, vocab=514, context=77, seed=0):
    """Random weights in OpenCLIP's text-tower key layout (``cond_stage_model.model.*`` without the prefix)."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=g) * 0.1

    state = {
        "token_embedding.weight": r(vocab, width),
        "positional_embedding": r(context, width),
        "ln_final.weight": 1 + r(width),
        "ln_final.bias": r(width),
        "text_projection": r(width, width),
    }
    for i in range(layers):
        p = f"transformer.resblocks.{i}."
        state.update(
            {
                p + "ln_1.weight": 1 + r(width),
                p + "ln_1.bias": r(width),
                p + "attn.in_proj_weight": r(3 * width, width),
                p + "attn.in_proj_bias": r(3 * width),
                p + "attn.out_proj.weight": r(width, width),
                p + "attn.out_proj.bias": r(width),
                p + "ln_2.weight": 1 + r(width),
                p + "ln_2.bias": r(width),
                p + "mlp.c_fc.weight": r(4 * width, width),
                p + "mlp.c_fc.bias": r(4 * width),
                p + "mlp.c_proj.weight": r(width, 4 * width),
                p + "mlp.c_proj.bias": r(width),
            }
        )
    return state
