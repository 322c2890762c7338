function ts = blufr_thresholds(impostor, genuine, fars)
%BLUFR_THRESHOLDS  The threshold at each FAR (lightcnn/protocols/blufr.py's rule): impostor scores sorted
%   descending s_1 >= ... >= s_N, k = round(f N); 0 < k < N: s_k; k = 0: halfway between s_1 and the lowest genuine
%   score above it (s_1 + sqrt(eps) if none); k = N: the lowest of all scores minus sqrt(eps).
%   Exact order statistics (kth_highest), the values a full sort would give.
  n = numel(impostor);
  if n == 0
    error('blufr_eval:scores', 'no impostor scores: a FAR threshold needs at least one');
  end
  ks = floor(fars * n + 0.5);
  highest = max(impostor);
  lowest = min(impostor);
  inner = unique(ks(ks > 0 & ks < n));
  values = kth_highest(impostor(:), inner, highest, lowest);
  if ~isempty(genuine)
    lowest = min(lowest, min(genuine));
  end
  above = genuine(genuine > highest);
  if isempty(above)
    at_zero = highest + sqrt(eps);
  else
    at_zero = (highest + min(above)) / 2;
  end
  ts = zeros(size(fars));
  for i = 1:numel(ks)
    if ks(i) == 0
      ts(i) = at_zero;
    elseif ks(i) >= n
      ts(i) = lowest - sqrt(eps);
    else
      ts(i) = values(inner == ks(i));
    end
  end
end

function values = kth_highest(v, ks, highest, lowest)
%   The ks-th highest values of v, exactly as sort(v, 'descend') would give them, without sorting all of v (tens
%   of millions of scores take Octave half a minute to sort): a histogram of 2^16 value bins (the bin is a monotone
%   function of the value) finds each k-th value's bin, and only the elements of those bins are sorted.
  values = zeros(size(ks));
  if isempty(ks)
    return;
  end
  if highest == lowest
    values(:) = highest;
    return;
  end
  n_bins = 65536;
  bins = floor((v - lowest) * ((n_bins - 1) / (highest - lowest))) + 1;  % 1..n_bins, ascending with the value
  counts = accumarray(bins, 1, [n_bins 1]);
  from_top = cumsum(counts(end:-1:1));  % from_top(j): how many values lie in the top j bins
  where = zeros(size(ks));
  for i = 1:numel(ks)
    j = find(from_top >= ks(i), 1);
    where(i) = n_bins - j + 1;
    ks(i) = ks(i) - (from_top(j) - counts(where(i)));  % rank within its bin, from the top
  end
  wanted = false(n_bins, 1);
  wanted(where) = true;
  chosen = wanted(bins);
  v = v(chosen);
  bins = bins(chosen);
  for b = unique(where(:))'
    in_bin = sort(v(bins == b), 'descend');
    values(where == b) = in_bin(ks(where == b));
  end
end
