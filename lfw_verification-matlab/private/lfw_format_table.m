function text = lfw_format_table(r)
%LFW_FORMAT_TABLE  The result table, line for line what lightcnn/protocols/report.py prints.
  lines = {
    'LFW verification'
    sprintf('  features  %s', r.features)
    sprintf('  pairs     %s [%s]: %d listed, %d used (%d matched, %d mismatched), %d excluded, %d folds', ...
            r.pairs, r.pair_format, r.n_listed, r.n_pairs, r.n_matched, r.n_mismatched, r.n_excluded, r.n_folds)
  };
  if isfield(r, 'zero_rows') && r.zero_rows.count > 0
    fate = '';
    if r.zero_rows.n_excluded > 0
      fate = ': excluded';
    elseif r.zero_rows.n_pairs > 0
      fate = [': kept, ', lfw_zero_scoring(r.pca_dim)];
    end
    lines{end + 1} = sprintf('  zero rows %d (feature rows of norm 0), used by %d pairs%s', r.zero_rows.count, ...
                             r.zero_rows.n_pairs, fate);
  end
  if r.pca_dim > 0
    lines{end + 1} = sprintf(['  score     cosine after PCA to %d dims, fitted on the other folds'' images ' ...
                              'for each fold'], r.pca_dim);
    lines{end + 1} = '            (ROC, AUC, EER, TPR and best-threshold use each pair''s out-of-fold score)';
  else
    lines{end + 1} = '  score     cosine similarity';
  end
  lines{end + 1} = 'fold  pairs   threshold   accuracy';
  for k = 1:r.n_folds
    lines{end + 1} = sprintf('%4d  %5d  %10s  %8s%%', k, r.fold_n_pairs(k), lfw_num(r.fold_threshold(k), '%10.6f'), ...
                             lfw_num(100 * r.fold_accuracy(k), '%8.4f'));
  end
  lines{end + 1} = sprintf('%-24s %s%% +- %s   (mean +- sample std (N-1) over folds; threshold from the other folds)', ...
                           sprintf('%d-fold accuracy', r.n_folds), lfw_num(100 * r.accuracy_mean, '%8.4f'), ...
                           lfw_num(100 * r.accuracy_std, '%.4f'));
  lines{end + 1} = sprintf('%-24s %s%%   (optimistic: one threshold, %s, chosen on all pairs)', ...
                           'best-threshold accuracy', lfw_num(100 * r.best_accuracy, '%8.4f'), ...
                           lfw_num(r.best_threshold, '%.6f'));
  lines{end + 1} = sprintf('%-24s %s', 'AUC', lfw_num(r.auc, '%8.6f'));
  lines{end + 1} = sprintf('%-24s %s%%', 'EER', lfw_num(100 * r.eer, '%8.4f'));
  lines{end + 1} = sprintf('%-24s %s%%', '100%-EER', lfw_num(100 * r.one_minus_eer, '%8.4f'));
  lines{end + 1} = sprintf('%-24s %s%%', 'TPR@FAR=1%', lfw_num(100 * r.tpr_at_far_1pct, '%8.4f'));
  lines{end + 1} = sprintf('%-24s %s%%', 'TPR@FAR=0.1%', lfw_num(100 * r.tpr_at_far_0_1pct, '%8.4f'));
  lines{end + 1} = sprintf('%-24s %s%%', 'TPR@FAR=0', lfw_num(100 * r.tpr_at_far_0, '%8.4f'));
  text = sprintf('%s\n', lines{:});
  text = text(1:end - 1);
end
