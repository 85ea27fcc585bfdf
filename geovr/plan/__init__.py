"""The cost model of a training step (FLOPs and memory counted on fake tensors at real sizes) and
the planner (`python -m geovr.plan`)."""
from .cost import MODELS, PARTS, RECIPES, TEACHER_MODES, StepCost, StepSpec, measure_step
from .layouts import LAYOUTS, LayoutMemory, per_gpu

__all__ = ["LAYOUTS", "MODELS", "PARTS", "RECIPES", "TEACHER_MODES", "LayoutMemory", "StepCost", "StepSpec",
           "measure_step", "per_gpu"]
