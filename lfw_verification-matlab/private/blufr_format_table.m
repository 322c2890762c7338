function text = blufr_format_table(r)
%BLUFR_FORMAT_TABLE  The table, line for line what lightcnn/protocols/blufr_report.py prints.
  ex = r.excluded;
  lines = {sprintf('BLUFR on LFW: %d trials', r.n_trials), sprintf('  features  %s', r.features), ...
           sprintf('  config    %s', r.config)};
  if r.pca_dim > 0
    lines{end + 1} = sprintf('  score     cosine after PCA to %d dims fitted on each trial''s training images', ...
                             r.pca_dim);
  else
    lines{end + 1} = '  score     cosine similarity';
  end
  if ex.images > 0
    lines{end + 1} = sprintf(['  excluded  %d images without a feature; summed over trials: train %d, test %d, ' ...
                              'gallery %d, probe %d'], ex.images, sum(ex.train), sum(ex.test), sum(ex.gallery), ...
                             sum(ex.probe));
  end
  lines{end + 1} = 'trial   test   genuine   impostor  VR@FAR=0.1%  gallery  gen.probes  imp.probes  DIR@1,FAR=1%';
  vr = r.vr_at_far_0_001.trials;
  di = r.dir_at_rank1_far_0_01.trials;
  for t = 1:r.n_trials
    lines{end + 1} = sprintf('%5d  %5d  %8d  %9d    %s  %7d  %10d  %10d     %s', t, r.n_test(t), ...
                             r.n_genuine_pairs(t), r.n_impostor_pairs(t), pct(vr(t)), r.n_gallery(t), ...
                             r.n_genuine_probes(t), r.n_impostor_probes(t), pct(di(t)));
  end
  lines{end + 1} = sprintf('%-18s %9s  %9s  %9s', '', 'mean', 'std', 'mean-std');
  rows = {r.vr_at_far_0_001, 'VR@FAR=0.1%'; r.dir_at_rank1_far_0_01, 'DIR@rank1,FAR=1%'};
  for i = 1:2
    s = rows{i, 1};
    lines{end + 1} = sprintf('%-18s %s  %s  %s', rows{i, 2}, pct(s.mean), pct(s.std), pct(s.mean_minus_std));
  end
  text = strjoin(lines, sprintf('\n'));
end

function text = pct(x)
  if isfinite(x)
    text = sprintf('%8.4f%%', 100 * x);
  else
    text = sprintf('%9s', 'nan');
  end
end
