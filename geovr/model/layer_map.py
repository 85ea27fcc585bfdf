"""Which LLM hidden states align with which teacher layers.

Teacher layer g (0-based, of G) -> LLM hidden-state index round((g + 1) / G * L), where index 0 is
the embeddings and index L the last layer's output (after DeepStack injection, before the final
norm). Python's round (half to even) as in the release: VGGT {4, 11, 17, 23} of 24 ->
{6, 14, 21, 28} for L = 28 and {8, 18, 27, 36} for L = 36.
"""
from __future__ import annotations

VGGT_LAYERS = (4, 11, 17, 23)
VGGT_DEPTH = 24


def layer_map(teacher_layers: tuple[int, ...] = VGGT_LAYERS, teacher_depth: int = VGGT_DEPTH,
              llm_layers: int = 28) -> dict[int, int]:
    """{teacher layer: LLM hidden-state index}. Raises ValueError for layers outside the teacher
    or two teacher layers landing on one LLM state (too few LLM layers)."""
    if teacher_depth < 1 or llm_layers < 1:
        raise ValueError(f"depths must be >= 1, got teacher {teacher_depth}, llm {llm_layers}")
    bad = [g for g in teacher_layers if not 0 <= g < teacher_depth]
    if bad:
        raise ValueError(f"teacher layers {bad} are outside 0..{teacher_depth - 1}")
    out = {g: round((g + 1) / teacher_depth * llm_layers) for g in teacher_layers}
    if len(set(out.values())) != len(out):
        raise ValueError(f"teacher layers {list(teacher_layers)} map onto repeated LLM states {out} with "
                         f"{llm_layers} LLM layers; use fewer teacher layers or a deeper LLM")
    return out
