"""PASyn synthesis: rig and forward kinematics, animation, camera, renderer, ground truth, BVH."""

from probpose.synthesis.animation import Animation, SceneOptions, animate
from probpose.synthesis.camera import Camera, intrinsics, look_at
from probpose.synthesis.kinematics import Posed, forward_kinematics, forward_kinematics_loop, offsets_from_joints
from probpose.synthesis.render import Frames, cast_rays, render
from probpose.synthesis.rig import PASYN_KEYPOINTS, ZEBRA_RIG, Bone, Keypoint, MotionRange, Rig
from probpose.synthesis.synth import SynthResult, legs_from_model, load_leg_poses, synthesize

__all__ = [
    "Posed",
    "forward_kinematics",
    "forward_kinematics_loop",
    "offsets_from_joints",
    "Rig",
    "Bone",
    "Keypoint",
    "MotionRange",
    "ZEBRA_RIG",
    "PASYN_KEYPOINTS",
    "Camera",
    "intrinsics",
    "look_at",
    "SceneOptions",
    "Animation",
    "animate",
    "Frames",
    "render",
    "cast_rays",
    "synthesize",
    "load_leg_poses",
    "legs_from_model",
    "SynthResult",
]
