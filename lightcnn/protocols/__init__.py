"""Face-verification protocols on extracted features, without MXNet: the LFW pair files (``lfw_pairs``), the
features file the extractor writes (``features``), the one cosine similarity (``similarity``), the 10-fold protocol
of ``lfw_eval.m`` with its ROC figures (``tenfold``), its printed table, JSON and ROC picture (``report``), the
threshold saved beside a checkpoint (``thresholds``) and the whole evaluation of a features file (``lfw_eval``).
"""
