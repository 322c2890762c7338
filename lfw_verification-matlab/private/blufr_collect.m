function r = blufr_collect(per_trial, excluded, pca_dim, grids)
%BLUFR_COLLECT  The per-trial figures as the results struct (the fields and order of blufr.py's results dict).
  T = numel(per_trial);
  R = numel(grids.ranks);
  F = numel(grids.open_fars);
  vr = zeros(T, numel(grids.vr_fars));
  vr_threshold = vr;
  dir = zeros(T, R, F);
  dir_threshold = zeros(T, F);
  cmc = zeros(T, R);
  counts = {'n_test', 'n_genuine_pairs', 'n_impostor_pairs', 'n_gallery', 'n_genuine_probes', 'n_impostor_probes'};
  for c = 1:numel(counts)
    n.(counts{c}) = zeros(1, T);
  end
  for t = 1:T
    p = per_trial{t};
    vr(t, :) = p.vr;
    vr_threshold(t, :) = p.vr_threshold;
    dir(t, :, :) = reshape(p.dir, [1, R, F]);
    dir_threshold(t, :) = p.dir_threshold;
    cmc(t, :) = p.cmc;
    for c = 1:numel(counts)
      n.(counts{c})(t) = p.(counts{c});
    end
  end
  r = struct('pca_dim', pca_dim, 'n_trials', T);
  r.vr_at_far_0_001 = summary(vr(:, grids.vr_at));
  r.dir_at_rank1_far_0_01 = summary(dir(:, grids.rank_at, grids.dir_at));
  r.far_grid = grids.vr_fars;
  r.vr = vr;
  r.vr_mean = mean(vr, 1);
  r.vr_threshold = vr_threshold;
  r.open_set_far_grid = grids.open_fars;
  r.ranks = grids.ranks;
  r.dir = dir;
  r.dir_mean = reshape(mean(dir, 1), [R, F]);
  r.dir_threshold = dir_threshold;
  r.cmc = cmc;
  r.cmc_mean = mean(cmc, 1);
  for c = 1:numel(counts)
    r.(counts{c}) = n.(counts{c});
  end
  r.excluded = excluded;
end

function s = summary(values)
%   mean, std (N - 1; 0 for one trial) and mean - std over the trials.
  values = values(:)';
  s = struct('mean', mean(values), 'std', std(values));
  s.mean_minus_std = s.mean - s.std;
  s.trials = values;
end
