function scores = lfw_pca_scores(data, rows1, rows2, folds, dim, n_folds)
%LFW_PCA_SCORES  n_folds x n_pairs scores; row k scores every pair after a PCA fitted without fold k.
%   For fold k the images of the pairs of the other folds are mean-centred; their top dim right singular
%   vectors W map every feature x to (x - mean) W, and pairs are scored by cosine.
  data = double(data);
  rows1 = rows1(:);
  rows2 = rows2(:);
  used = unique([rows1; rows2]);
  scores = zeros(n_folds, numel(rows1));
  for k = 1:n_folds
    train = folds(:) ~= k;
    rows = unique([rows1(train); rows2(train)]);
    limit = min(size(data, 2), numel(rows) - 1);
    if dim < 1 || dim > limit
      error('lfw_eval:pca', 'PCA dimension %d must be in 1..%d for fold %d (%d training images of dimension %d)', ...
            dim, limit, k, numel(rows), size(data, 2));
    end
    centre = mean(data(rows, :), 1);
    [~, ~, v] = svd(bsxfun(@minus, data(rows, :), centre), 'econ');
    projected = zeros(size(data, 1), dim);
    projected(used, :) = bsxfun(@minus, data(used, :), centre) * v(:, 1:dim);
    scores(k, :) = lfw_cosine(projected(rows1, :), projected(rows2, :))';
  end
end
