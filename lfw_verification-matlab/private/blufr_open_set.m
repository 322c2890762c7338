function o = blufr_open_set(gallery, gallery_labels, probes, probe_labels, grids)
%BLUFR_OPEN_SET  Open-set identification of one trial (normalised rows): DIR (ranks x fars), CMC, thresholds.
%   A probe is genuine when its label is in the gallery; its rank counts the gallery images scoring >= its own
%   subject's image (a tie ranks the true subject last). Impostor probes give their best gallery score.
  if numel(unique(gallery_labels)) ~= numel(gallery_labels)
    error('blufr_eval:config', 'the gallery holds two images of one subject (BLUFR''s galleries hold one per subject)');
  end
  scores = probes * gallery';  % (probes, gallery)
  [is_genuine, column] = ismember(probe_labels(:), gallery_labels(:));
  genuine_scores = scores(is_genuine, :);
  genuine = genuine_scores(sub2ind(size(genuine_scores), (1:sum(is_genuine))', column(is_genuine)));
  rank = sum(bsxfun(@ge, genuine_scores, genuine), 2);
  impostor = max(scores(~is_genuine, :), [], 2);
  ts = blufr_thresholds(impostor, genuine, grids.open_fars);
  n = numel(genuine);
  if n == 0
    n = NaN;
  end
  o.dir = zeros(numel(grids.ranks), numel(ts));
  o.cmc = zeros(1, numel(grids.ranks));
  for j = 1:numel(grids.ranks)
    within = rank <= grids.ranks(j);
    o.cmc(j) = sum(within) / n;
    for i = 1:numel(ts)
      o.dir(j, i) = sum(within & genuine >= ts(i)) / n;
    end
  end
  o.threshold = ts;
  o.n_genuine = numel(genuine);
  o.n_impostor = numel(impostor);
end
