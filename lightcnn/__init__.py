"""LightCNN (Wu et al., "A Light CNN for Deep Face Representation with Noisy Labels") in MXNet Gluon."""
import os

# MXNet reads the OpenMP thread count once, when it is first imported; on the 2-core machines this project is
# measured on it otherwise used one thread (31 vs 56 images/s training LightCNN-9). Use every core unless the user
# said otherwise.
os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))

__version__ = "0.1.0"
