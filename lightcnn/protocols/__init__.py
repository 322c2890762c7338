"""Face-verification protocols on extracted features, without MXNet: the LFW pair files (``lfw_pairs``), the
features file the extractor writes (``features``), the one cosine similarity (``similarity``), the 10-fold protocol
of ``lfw_eval.m`` with its ROC figures (``tenfold``), its printed table, JSON and ROC picture (``report``), the
threshold saved beside a checkpoint (``thresholds``) and the whole evaluation of a features file (``lfw_eval``).

Beyond LFW's 6,000 pairs, ``blufr``: the BLUFR benchmark on LFW (Liao et al., IJCB 2014), verification at low FAR
and open-set identification; ``lfw_verification-matlab/blufr_eval.m`` is its MATLAB/Octave twin.
"""
