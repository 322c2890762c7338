function r = lfw_evaluate(scores, is_same, folds, n_folds)
%LFW_EVALUATE  All protocol figures for pairs with scores, labels and 1-based folds.
%   scores is n x 1, or n_folds x n where row k holds the scores under a model fitted without fold k (PCA).
%   For each fold the threshold is chosen (lfw_best_threshold) on the other folds and applied to the fold;
%   mean and sample standard deviation (N-1) over folds. Best-threshold accuracy (optimistic) and the ROC
%   (lfw_roc) use each pair's out-of-fold score. Field names are those of lightcnn/protocols/tenfold.py.
  is_same = logical(is_same(:));
  folds = folds(:);
  n = numel(is_same);
  if numel(scores) == n
    scores = repmat(scores(:)', n_folds, 1);
  end
  if ~isequal(size(scores), [n_folds n])
    error('lfw_eval:evaluate', 'scores must be %d x 1 or %d x %d', n, n_folds, n);
  end
  if ~all(isfinite(scores(:)))
    error('lfw_eval:evaluate', 'scores must be finite');
  end
  if n_folds < 2
    error('lfw_eval:evaluate', 'need at least 2 folds, got %d', n_folds);
  end
  if any(folds < 1 | folds > n_folds | folds ~= round(folds))
    error('lfw_eval:evaluate', 'folds must be whole numbers in 1..%d', n_folds);
  end
  fold_n = accumarray(folds, 1, [n_folds 1]);
  if any(fold_n == 0)
    error('lfw_eval:evaluate', 'fold(s) %s hold no pairs', sprintf('%d ', find(fold_n == 0)));
  end

  fold_accuracy = zeros(n_folds, 1);
  fold_threshold = zeros(n_folds, 1);
  for k = 1:n_folds
    test = folds == k;
    t = lfw_best_threshold(scores(k, ~test), is_same(~test));
    fold_threshold(k) = t;
    fold_accuracy(k) = sum((scores(k, test)' >= t) == is_same(test)) / fold_n(k);
  end

  out_of_fold = scores(sub2ind(size(scores), folds, (1:n)'));
  [best_t, best_acc] = lfw_best_threshold(out_of_fold, is_same);
  roc = lfw_roc(out_of_fold, is_same);

  r = struct();
  r.n_pairs = n;
  r.n_matched = sum(is_same);
  r.n_mismatched = n - sum(is_same);
  r.n_folds = n_folds;
  r.fold_n_pairs = fold_n;
  r.fold_accuracy = fold_accuracy;
  r.fold_threshold = fold_threshold;
  r.accuracy_mean = mean(fold_accuracy);
  r.accuracy_std = std(fold_accuracy);
  r.best_accuracy = best_acc;
  r.best_threshold = best_t;
  r.auc = roc.auc;
  r.eer = roc.eer;
  r.one_minus_eer = roc.one_minus_eer;
  r.tpr_at_far_1pct = roc.tpr_at_far_1pct;
  r.tpr_at_far_0_1pct = roc.tpr_at_far_0_1pct;
  r.tpr_at_far_0 = roc.tpr_at_far_0;
  r.roc_fpr = roc.fpr;
  r.roc_tpr = roc.tpr;
  r.roc_threshold = roc.threshold;
end
