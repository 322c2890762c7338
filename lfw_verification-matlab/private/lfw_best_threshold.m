function [threshold, accuracy] = lfw_best_threshold(scores, is_same)
%LFW_BEST_THRESHOLD  Threshold maximising the accuracy of 'same when score >= threshold'.
%   With u_1 < ... < u_m the distinct scores, candidate j = 0..m calls the j lowest distinct scores
%   "different"; its threshold is -Inf (j = 0), +Inf (j = m) or the midpoint (u_j + u_{j+1}) / 2. The most
%   correct decisions win; among equals the smallest j (the lowest threshold).
  scores = scores(:);
  is_same = logical(is_same(:));
  if isempty(scores)
    error('lfw_eval:threshold', 'no pairs to choose a threshold on');
  end
  [u, ~, j] = unique(scores);
  j = j(:);
  m = numel(u);
  pos = accumarray(j, double(is_same), [m 1]);
  neg = accumarray(j, double(~is_same), [m 1]);
  correct = [0; cumsum(neg)] + (sum(pos) - [0; cumsum(pos)]);
  [best, jj] = max(correct);
  j0 = jj - 1;
  if j0 == 0
    threshold = -Inf;
  elseif j0 == m
    threshold = Inf;
  else
    threshold = (u(j0) + u(j0 + 1)) / 2;
  end
  accuracy = best / numel(scores);
end
