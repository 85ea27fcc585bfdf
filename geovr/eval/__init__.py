"""Evaluation: the VSI-Bench harness (`python -m geovr.eval.vsibench`), its scoring, and linear
probes of 3D awareness in hidden states (`python -m geovr.eval.probe`)."""
