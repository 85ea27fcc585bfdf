"""Faults for the doctor's tests, loaded at start-up by every Python process that has this folder
on PYTHONPATH (Python imports `sitecustomize` itself). GEOVR_TEST_FAULT=PATH:KIND breaks one path
in the processes the doctor starts, as a broken GPU kernel would:
  PATH depth | align (the Triton launchers) | pose (the compiled extension's autograd op) |
       decode (DALI's decoding; raise and abort only)
  KIND raise (an exception) | abort (os.abort: the process dies) | wrong (values and gradients
       0.1 % off) | count (works; appends a line to $GEOVR_TEST_FAULT_COUNT per process start)
"""
import os

_fault = os.environ.get("GEOVR_TEST_FAULT", "")
if _fault:
    _path, _kind = _fault.split(":")
    if _kind == "count":
        with open(os.environ["GEOVR_TEST_FAULT_COUNT"], "a") as f:
            f.write(_path + "\n")
    else:
        import torch

        def _broken(original, scale_inputs):
            def run(*args, **kwargs):
                if _kind == "raise":
                    raise RuntimeError("simulated kernel failure")
                if _kind == "abort":
                    os.abort()
                return original(*scale_inputs(args), **kwargs)
            return run

        if _path in ("depth", "align"):
            import importlib

            module = importlib.import_module(f"geovr.kernels.{_path}_loss")
            name = f"fused_{_path}_loss"
            if _path == "depth":  # pred off by 0.1 %: the loss and every gradient move
                scale = lambda a: ([p * 1.001 for p in a[0]], *a[1:])  # noqa: E731
            else:
                scale = lambda a: ([[s * 1.001 + 0.01 for s in layer] for layer in a[0]], *a[1:])  # noqa: E731
            setattr(module, name, _broken(getattr(module, name), scale))
        elif _path == "pose":
            from geovr.losses import pose

            original = pose.PoseLossFunction.apply
            pose.PoseLossFunction.apply = _broken(original, lambda a: (a[0] * 1.001, *a[1:]))
        elif _path == "decode":
            from geovr.data import decode

            decode.decode_dali = _broken(decode.decode_dali, lambda a: a)
        else:
            raise ValueError(f"GEOVR_TEST_FAULT: unknown path {_path!r}")
