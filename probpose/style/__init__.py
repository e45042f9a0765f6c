"""Style transfer for synthetic frames (PASyn's last stage): AdaIN on a frozen VGG16 slice with
offline weights, a trainable decoder (one ships: :data:`SHIPPED_MODEL`), alpha blending,
compositing over backgrounds; the colour statistics transfer (:mod:`probpose.style.colour`) as the
training-free baseline; the measures that compare them (:mod:`probpose.style.measures`)."""

from probpose.style.adain import StyleNet, adain, channel_stats, make_decoder
from probpose.style.images import composite, list_images
from probpose.style.jobs import StyleApplyRequest, StyleTrainRequest, run_style_apply, run_style_train
from probpose.style.transfer import SHIPPED_MODEL, StyleOptions, adain_distance, apply_style, load_style, train_style
from probpose.style.vgg import DEPTHS, VGGEncoder, VGGWeights, hed_weights_path, load_vgg_weights, random_vgg_weights

__all__ = [
    "StyleTrainRequest",
    "StyleApplyRequest",
    "run_style_train",
    "run_style_apply",
    "adain",
    "channel_stats",
    "StyleNet",
    "make_decoder",
    "VGGEncoder",
    "VGGWeights",
    "DEPTHS",
    "load_vgg_weights",
    "random_vgg_weights",
    "hed_weights_path",
    "StyleOptions",
    "SHIPPED_MODEL",
    "train_style",
    "load_style",
    "apply_style",
    "adain_distance",
    "composite",
    "list_images",
]
