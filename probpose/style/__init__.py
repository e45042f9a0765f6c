"""Style transfer for synthetic frames (PASyn's last stage): AdaIN on a frozen VGG16 slice with
offline weights, a trainable decoder, alpha blending, compositing over backgrounds."""

from probpose.style.adain import StyleNet, adain, channel_stats, make_decoder
from probpose.style.images import composite, list_images
from probpose.style.transfer import StyleOptions, adain_distance, apply_style, load_style, train_style
from probpose.style.vgg import DEPTHS, VGGEncoder, VGGWeights, hed_weights_path, load_vgg_weights, random_vgg_weights

__all__ = [
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
    "train_style",
    "load_style",
    "apply_style",
    "adain_distance",
    "composite",
    "list_images",
]
