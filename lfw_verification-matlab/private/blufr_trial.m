function r = blufr_trial(data, labels, trial, pca_dim, grids)
%BLUFR_TRIAL  Every figure of one trial: verification on the test set, open-set identification of its probes
%   against its gallery. data and labels are per configuration image; trial holds 1-based index columns.
  test = trial.test;
  x = data(test, :);
  if pca_dim > 0
    train = data(trial.train, :);
    limit = min(size(train, 2), size(train, 1) - 1);
    if pca_dim < 1 || pca_dim > limit
      error('blufr_eval:pca', 'PCA dimension %d must be in 1..%d (%d training images of dimension %d)', ...
            pca_dim, limit, size(train, 1), size(train, 2));
    end
    centre = mean(train, 1);
    [~, ~, v] = svd(bsxfun(@minus, train, centre), 'econ');
    x = bsxfun(@minus, x, centre) * v(:, 1:pca_dim);
  end
  norms = sqrt(sum(x .* x, 2));
  norms(norms == 0) = 1;  % a row of norm 0 stays 0 and scores 0
  x = bsxfun(@rdivide, x, norms);
  [in_gallery, gal] = ismember(trial.gallery, test);
  [in_probe, prb] = ismember(trial.probe, test);
  if ~all(in_gallery) || ~all(in_probe)
    error('blufr_eval:config', 'the gallery or probe set holds images that are not in the test set');
  end

  [genuine, impostor] = blufr_pair_scores(x, labels(test));
  r.n_test = numel(test);
  r.n_genuine_pairs = numel(genuine);
  r.n_impostor_pairs = numel(impostor);
  r.vr_threshold = blufr_thresholds(impostor, genuine, grids.vr_fars);
  clear impostor;
  r.vr = blufr_accept_rates(genuine, r.vr_threshold);
  r.n_gallery = numel(gal);
  o = blufr_open_set(x(gal, :), labels(trial.gallery), x(prb, :), labels(trial.probe), grids);
  r.dir = o.dir;
  r.cmc = o.cmc;
  r.dir_threshold = o.threshold;
  r.n_genuine_probes = o.n_genuine;
  r.n_impostor_probes = o.n_impostor;
end
