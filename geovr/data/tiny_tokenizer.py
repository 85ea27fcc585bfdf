"""A tiny Qwen-style tokenizer built offline: the default for the demo and the tests.

Real runs load the model's own tokenizer from a local path (`AutoTokenizer.from_pretrained`).
This one is a byte-level BPE (any text encodes) trained in about a second on spatial-QA text,
with Qwen's special tokens and a ChatML chat template that renders video/image content items
as Qwen3-VL's template does (`<|vision_start|><|video_pad|><|vision_end|>`).
"""
from __future__ import annotations

import itertools

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                  "<|image_pad|>", "<|video_pad|>"]

CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "<|im_start|>{{ message['role'] + '\\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for item in message['content'] -%}"
    "{%- if item['type'] == 'video' -%}<|vision_start|><|video_pad|><|vision_end|>"
    "{%- elif item['type'] == 'image' -%}<|vision_start|><|image_pad|><|vision_end|>"
    "{%- else -%}{{ item['text'] }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "<|im_end|>{{ '\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|im_start|>{{ 'assistant\\n' }}{%- endif -%}"
)


def _corpus() -> list[str]:
    from .synthetic.scene import CATEGORIES, COLOURS

    words = list(CATEGORIES) + list(COLOURS)
    lines = [
        "These are frames of a video.", "How many chairs are in this room?",
        "What is the distance between the centres of the table and the sofa (in meters)?",
        "What is the length of the longest dimension (length, width, or height) of the lamp, "
        "measured in centimeters?", "What is the size of this room (in square meters)?",
        "Which of these objects is the closest to the bed?", "is the box to my left, right, or back?",
        "If I am standing by the cabinet and facing the ball,",
        "What will be the first-time appearance order of the following categories in the video:",
        "Please answer the question using a single word or phrase.",
        "Answer with the option's letter from the given choices directly.",
    ]
    lines += [f"{a} {b}" for a, b in itertools.product(words, words)]
    lines += [f"<{t / 10:.1f} seconds> {n} {n / 100:.2f}" for t, n in zip(range(0, 4000, 7), range(4000))]
    lines += ["A. B. C. D. left right back yes no"] * 10
    return lines


def build_tiny_tokenizer(vocab_size: int = 1024):
    """A `PreTrainedTokenizerFast` with Qwen's special tokens and a ChatML chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_corpus(), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   additional_special_tokens=SPECIAL_TOKENS[1:])
    fast.chat_template = CHAT_TEMPLATE
    return fast
