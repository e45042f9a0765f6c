"""Flow building blocks (not distributions): the MLP conditioner, ActNorm, affine and spline
couplings, and the stack that runs them over a standard-normal base. normflows is the container:
every layer is a ``normflows.flows.Flow`` (``forward``: base -> data, ``inverse``: data -> base,
each returning its own log|det|)."""

from probpose.flows.actnorm import ActNorm
from probpose.flows.affine import AffineCoupling
from probpose.flows.autoregressive import AutoregressiveRQS, MaskedMLP
from probpose.flows.linear import GaussianLayer, floored_covariance, moments_to_covariance
from probpose.flows.mlp import MLP
from probpose.flows.spline import RQSCoupling, rq_spline
from probpose.flows.stack import FlowStack, coupling_stack

__all__ = [
    "MLP",
    "ActNorm",
    "AffineCoupling",
    "AutoregressiveRQS",
    "MaskedMLP",
    "GaussianLayer",
    "floored_covariance",
    "moments_to_covariance",
    "RQSCoupling",
    "rq_spline",
    "FlowStack",
    "coupling_stack",
]
