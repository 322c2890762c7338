function lo = lfw_far_floor(n_mismatched)
%LFW_FAR_FLOOR  Left end of the logarithmic FAR axis: the decade at or below 1/N, the smallest non-zero FAR that N
%   mismatched pairs can show (1e-4 without any); lightcnn/protocols/report.py's far_floor computes the same.
  if n_mismatched < 1
    lo = 1e-4;
  else
    lo = 10 ^ floor(log10(1 / n_mismatched) + 1e-9);
  end
end
