"""Evaluation protocols beyond LFW's 6,000 pairs (numpy only: no MXNet, no command line).

``blufr``: the BLUFR benchmark on LFW (Liao et al., IJCB 2014), verification at low FAR and open-set identification;
``lfw_verification-matlab/blufr_eval.m`` is its MATLAB/Octave twin.
"""
