function [genuine, impostor] = blufr_pair_scores(x, labels)
%BLUFR_PAIR_SCORES  Cosine scores of all unordered pairs of rows of the normalised x: genuine (same label) and
%   impostor. Made in blocks of the lower triangle, never the whole matrix. Rows in label order: the earlier rows of
%   row r's own label are then first(r)..r-1, so each column of a block splits into two contiguous runs.
  [labels, order] = sort(labels(:));
  x = x(order, :);
  n = numel(labels);
  starts = [true; diff(labels) ~= 0];
  first = cummax((1:n)' .* starts);
  n_genuine = sum((1:n)' - first);
  genuine = zeros(n_genuine, 1);
  impostor = zeros(n * (n - 1) / 2 - n_genuine, 1);
  g = 0;
  i = 0;
  block = 1024;
  for a = 1:block:n
    b = min(a + block - 1, n);
    s = x(1:b, :) * x(a:b, :)';  % (b, b - a + 1): column c is row a + c - 1 against rows 1..b
    for r = a:b
      f = first(r) - 1;  % impostors: rows 1..f; genuine: rows f + 1..r - 1
      c = r - a + 1;
      impostor(i + 1:i + f) = s(1:f, c);
      genuine(g + 1:g + r - 1 - f) = s(f + 1:r - 1, c);
      i = i + f;
      g = g + r - 1 - f;
    end
  end
end
