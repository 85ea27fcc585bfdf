"""3D teachers: the interface, the synthetic world's exact teacher, and VGGT's pose encoding."""
from .base import Teacher, TeacherRequest, TeacherTargets
from .pose_encoding import (extrinsics_to_pose_enc, pose_enc_to_extrinsics, quaternion_to_rotation,
                            relative_to_first, rotation_to_quaternion)
from .synthetic import SyntheticTeacher

__all__ = ["SyntheticTeacher", "Teacher", "TeacherRequest", "TeacherTargets", "extrinsics_to_pose_enc",
           "pose_enc_to_extrinsics", "quaternion_to_rotation", "relative_to_first", "rotation_to_quaternion"]
