"""Programs built on the library: the demo (``make demo``), the LFW benchmark (``make lfw``), the synthetic faces the
demo trains on, and the benchmarks (model, input pipeline, extraction)."""
from lightcnn.cli import use_every_core

use_every_core()  # before a tool loads MXNet: the benchmarks measure with the commands' thread count
