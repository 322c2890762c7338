function fold = lfw_block_folds(is_same, n_folds)
%LFW_BLOCK_FOLDS  Folds 1..n_folds if the labels are n_folds blocks of n matched then n mismatched, else [].
  is_same = logical(is_same(:));
  total = numel(is_same);
  fold = [];
  if total == 0 || mod(total, 2 * n_folds) ~= 0
    return;
  end
  n = total / (2 * n_folds);
  block = [true(n, 1); false(n, 1)];
  if isequal(is_same, repmat(block, n_folds, 1))
    fold = floor((0:total - 1)' / (2 * n)) + 1;
  end
end
