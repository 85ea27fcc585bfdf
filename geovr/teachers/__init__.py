"""3D teachers: the interface, the synthetic world's exact teacher, VGGT, metric depth for the scale
target, and VGGT's pose encoding. VGGT and Depth-Anything-3 are imported only when used."""
from .base import Teacher, TeacherRequest, TeacherTargets
from .factory import make_teacher
from .metric_depth import MetricDepthTeacher, MetricScaledTeacher, SyntheticMetricDepth
from .pose_encoding import (extrinsics_to_pose_enc, pose_enc_to_extrinsics, quaternion_to_rotation,
                            relative_to_first, rotation_to_quaternion)
from .synthetic import SyntheticTeacher
from .vggt import VGGTTeacher

__all__ = ["MetricDepthTeacher", "MetricScaledTeacher", "SyntheticMetricDepth", "SyntheticTeacher", "Teacher",
           "TeacherRequest", "TeacherTargets", "VGGTTeacher", "extrinsics_to_pose_enc", "make_teacher",
           "pose_enc_to_extrinsics", "quaternion_to_rotation", "relative_to_first", "rotation_to_quaternion"]
