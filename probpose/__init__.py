"""probpose: probabilistic pose priors as Pyro distributions."""

__version__ = "0.1.0"
