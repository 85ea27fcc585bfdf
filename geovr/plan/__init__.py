"""The cost model of a training step (FLOPs and memory counted on fake tensors at real sizes) and
the planner (`python -m geovr.plan`)."""
from .cost import MODELS, PARTS, RECIPES, TEACHER_MODES, StepCost, StepSpec, measure_step
from .layouts import Layout, LayoutMemory, layouts, per_gpu

__all__ = ["MODELS", "PARTS", "RECIPES", "TEACHER_MODES", "Layout", "LayoutMemory", "StepCost", "StepSpec",
           "layouts", "measure_step", "per_gpu"]
