"""Programs built on the library: the demo (``make demo``), the LFW benchmark (``make lfw``), the synthetic faces the
demo trains on, and the benchmarks (model, input pipeline, extraction)."""
