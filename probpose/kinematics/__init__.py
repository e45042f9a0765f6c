"""Kinematics in the core: forward kinematics of a skeleton or rig, pinhole cameras and the one
projection, and the zebra rig. Synthesis (rendering) and fitting both build on it; importing it
loads neither the renderer nor PIL."""

from probpose.kinematics.camera import Camera, crop_intrinsics, intrinsics, look_at, project
from probpose.kinematics.forward import Posed, forward_kinematics, offsets_from_joints
from probpose.kinematics.rig import PASYN_KEYPOINTS, ZEBRA_RIG, Bone, Keypoint, MotionRange, Rig

__all__ = [
    "Posed",
    "forward_kinematics",
    "offsets_from_joints",
    "Camera",
    "intrinsics",
    "look_at",
    "crop_intrinsics",
    "project",
    "Rig",
    "Bone",
    "Keypoint",
    "MotionRange",
    "ZEBRA_RIG",
    "PASYN_KEYPOINTS",
]
