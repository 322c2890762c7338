"""LightCNN (Wu et al., "A Light CNN for Deep Face Representation with Noisy Labels") in MXNet Gluon."""

__version__ = "0.1.0"
