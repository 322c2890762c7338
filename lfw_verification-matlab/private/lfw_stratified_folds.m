function fold = lfw_stratified_folds(is_same, n_folds)
%LFW_STRATIFIED_FOLDS  Each n_folds-th of the matched and of the mismatched pairs, in file order (1-based folds).
%   The i-th matched pair (0-based) goes to fold floor(n_folds i / n_matched) + 1; likewise the mismatched.
  is_same = logical(is_same(:));
  rank_same = cumsum(is_same) - 1;
  rank_diff = cumsum(~is_same) - 1;
  fold = zeros(numel(is_same), 1);
  fold(is_same) = floor(n_folds * rank_same(is_same) / sum(is_same)) + 1;
  fold(~is_same) = floor(n_folds * rank_diff(~is_same) / sum(~is_same)) + 1;
end
