"""Answers from one prefill per video (`geovr.eval.shared_prefix`) against HF's `generate` on each
whole prompt, on a tiny random Qwen3-VL and a real clip: the same tokens and every step's logits
within 1e-5, greedy and sampled (each question seeded from its id), in batches of 1 and 3, with
the prefix reused by batch after batch."""
import dataclasses

import pytest
import torch

from geovr.eval.generation import GenerationSettings, generate_kwargs, question_seed
from geovr.eval.inputs import QuestionEncoder
from geovr.eval.model_io import load_model
from geovr.eval.questions import read_questions
from geovr.eval.shared_prefix import continue_batch, prefill, shared_split, vision_end_id


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    torch.manual_seed(0)
    return load_model(tiny_model_dir, torch.device("cpu"), torch.float32)


@pytest.fixture(scope="module")
def encoded(loaded, vsibench_dir):
    """Every VSI-Bench kind of question, all about one video, encoded as the harness encodes them."""
    _, tok = loaded
    qs = read_questions(str(vsibench_dir))
    video = qs[0].video
    qs = [dataclasses.replace(q, video=video) for q in qs]
    enc = QuestionEncoder(tok, backend="pyav")
    return [enc(q) for q in qs]


def reference(model, tok, e, settings):
    """HF's generate on the whole prompt alone: (new tokens up to the end token, each step's logits)."""
    kw = generate_kwargs(tok, settings)
    if settings.do_sample:
        torch.manual_seed(question_seed(settings.seed, e.question.id))
    out = model.generate(input_ids=e.input_ids[None], attention_mask=torch.ones_like(e.input_ids)[None],
                         mm_token_type_ids=e.mm_token_type_ids[None], pixel_values_videos=e.pixel_values_videos,
                         video_grid_thw=e.video_grid_thw, output_logits=True, return_dict_in_generate=True, **kw)
    return out.sequences[0, len(e.input_ids):].tolist(), [x[0] for x in out.logits]


def shared(model, tok, encoded, settings, batch):
    p, same = shared_split(encoded, vision_end_id(tok))
    assert same == list(range(len(encoded)))
    prefix = prefill(model, encoded[0], p)
    tokens, logits = [], []
    for start in range(0, len(encoded), batch):
        chunk = encoded[start:start + batch]
        seeds = [question_seed(settings.seed, e.question.id) for e in chunk]
        t, steps = continue_batch(model, tok, prefix, [e.input_ids[p:] for e in chunk], settings, seeds,
                                  keep_logits=True)
        tokens += t
        logits += [[s[i] for s in steps[:len(t[i])]] for i in range(len(chunk))]
    return tokens, logits


SETTINGS = {
    "greedy": {},
    "sampled": {"do_sample": True, "temperature": 0.9, "top_p": 0.95},
    "sampled_top_k": {"do_sample": True, "temperature": 0.9, "top_p": 0.95, "top_k": 20},
    # the release protocol's sampler (its repetition_penalty 1.0 builds no processor: 1.3 does)
    "release_sampler": {"do_sample": True, "temperature": 0.7, "top_p": 0.8, "top_k": 20, "repetition_penalty": 1.3},
    # a penalty below 1 favours every token of the prompt, the prefix's included: the replies repeat them
    "greedy_repeating": {"repetition_penalty": 0.2},
}


@pytest.mark.parametrize("sample", list(SETTINGS))
@pytest.mark.parametrize("batch", [1, 3])
def test_tokens_and_logits_equal_generate_on_each_prompt(loaded, encoded, sample, batch):
    model, tok = loaded
    settings = GenerationSettings(max_new_tokens=8, seed=3, **SETTINGS[sample])
    got_tokens, got_logits = shared(model, tok, encoded, settings, batch)
    lengths = []
    for e, tokens, logits in zip(encoded, got_tokens, got_logits):
        want_tokens, want_logits = reference(model, tok, e, settings)
        assert tokens == want_tokens, e.question.id
        lengths.append(len(tokens))
        for step, (a, b) in enumerate(zip(logits, want_logits)):
            torch.testing.assert_close(a, b.float(), rtol=0, atol=1e-5, msg=f"{e.question.id} step {step}")
    assert max(lengths) > 2  # the replies are long enough to test the decoding, not only the first token


# ------------------------------------------------------------------ through the harness

def _replies(output):
    import json

    rows = [json.loads(line) for line in (output / "samples_vsibench.jsonl").read_text().splitlines()]
    return {str(r["doc"]["id"]): r["resps"][0][0] for r in rows}


@pytest.mark.parametrize("sample", [False, True], ids=["greedy", "sampled"])
def test_the_harness_answers_the_same_with_and_without_sharing(loaded, vsibench_dir, tmp_path, sample):
    from geovr.eval.vsibench import evaluate

    model, tok = loaded
    qs = read_questions(str(vsibench_dir))
    settings = GenerationSettings(max_new_tokens=6, do_sample=sample, temperature=0.9, seed=1)
    runs = {}
    for mode, batch in [("off", 4), ("on", 1), ("on", 3), ("auto", 8)]:
        out = tmp_path / f"{mode}{batch}"
        result = evaluate(model, tok, qs, out, {"m": 1}, settings, batch_size=batch, progress=False, share_prefix=mode)
        runs[mode, batch] = _replies(out)
        want = {"mode": mode, "shared": 0 if mode == "off" else 6, "alone": 6 if mode == "off" else 0,
                "prefills": 0 if mode == "off" else 2}  # two videos
        assert result["prefix"] == want
    first = runs["off", 4]
    assert all(r == first for r in runs.values()) and any(first.values())


def test_a_question_with_another_prefix_is_answered_alone_and_a_resume_mixes_modes(loaded, vsibench_dir, tmp_path,
                                                                                   monkeypatch):
    import shutil

    from geovr.eval import vsibench
    from geovr.eval.vsibench import evaluate

    model, tok = loaded
    qs = read_questions(str(vsibench_dir))
    settings = GenerationSettings(max_new_tokens=5)
    full = evaluate(model, tok, qs, tmp_path / "off", {"m": 1}, settings, progress=False, share_prefix="off")

    class OtherSystemTurn(QuestionEncoder):
        """Question 0 (its video's first) gets another first token: its prefix is no longer the video's."""

        def __call__(self, q):
            e = super().__call__(q)
            if str(q.id) == "0":
                e.input_ids = e.input_ids.clone()
                e.input_ids[1] = e.input_ids[2]
            return e

    monkeypatch.setattr(vsibench, "QuestionEncoder", OtherSystemTurn)
    mixed = evaluate(model, tok, qs, tmp_path / "other", {"m": 1}, settings, progress=False, share_prefix="on")
    assert mixed["prefix"] == {"mode": "on", "shared": 5, "alone": 1, "prefills": 2}
    monkeypatch.undo()

    out = tmp_path / "resumed"
    shutil.copytree(tmp_path / "off", out)
    lines = (out / "samples_vsibench.jsonl").read_text().splitlines(keepends=True)
    (out / "samples_vsibench.jsonl").write_text("".join(lines[:2]))  # two answered without sharing
    resumed = evaluate(model, tok, qs, out, {"m": 1}, settings, progress=False, share_prefix="on")
    assert resumed["prefix"]["shared"] == 4 and resumed["results"] == full["results"]
    assert _replies(out) == _replies(tmp_path / "off")
