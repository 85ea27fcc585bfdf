"""Megatron-core tensor and pipeline parallelism for the student's language model.

config.py      HF Qwen3-VL text config -> TransformerConfig (TextDims, padded vocabulary)
rope.py        interleaved M-RoPE angles in Megatron's layout
text_model.py  Qwen3VLTextModel: one pipeline stage of the text decoder (DeepStack, taps)
qwen3vl.py     MegatronQwen3VL: + the HF vision tower on the first stage; build_stage, load_hf, gather_hf
convert.py     HF <-> Megatron weights for any TP x PP (pure functions)

Importing this package needs megatron-core (`pip install megatron-core`); the submodules import it.
"""
from .config import TextDims, padded_vocab, transformer_config
from .convert import hf_to_mcore, mcore_to_hf

__all__ = ["TextDims", "hf_to_mcore", "mcore_to_hf", "padded_vocab", "transformer_config"]
