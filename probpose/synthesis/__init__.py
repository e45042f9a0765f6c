"""PASyn synthesis: animation, renderer, ground truth, BVH, on the rig, forward kinematics and cameras
of :mod:`probpose.kinematics`."""

from probpose.synthesis.animation import Animation, SceneOptions, animate
from probpose.synthesis.render import Frames, cast_rays, image_boxes, render
from probpose.synthesis.synth import SynthRequest, SynthResult, legs_from_model, load_leg_poses, run_synth, synthesize

__all__ = [
    "SynthRequest",
    "run_synth",
    "SceneOptions",
    "Animation",
    "animate",
    "Frames",
    "render",
    "cast_rays",
    "image_boxes",
    "synthesize",
    "load_leg_poses",
    "legs_from_model",
    "SynthResult",
]
