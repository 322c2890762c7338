"""Other frameworks' files: the authors' PyTorch weights in (:mod:`.convert`), ONNX out (:mod:`.export`)."""
