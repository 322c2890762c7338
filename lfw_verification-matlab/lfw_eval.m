function results = lfw_eval(varargin)
%LFW_EVAL  LFW verification: 10-fold accuracy, ROC, AUC, EER and TPR@FAR of extracted features.
%
%   results = lfw_eval()
%   results = lfw_eval(features_file, pairs_file, out_dir, 'pca', DIM, 'exclude_missing', true)
%
%   With no arguments it does what the original evaluator did: it loads LFW_features.mat and the pair list
%   beside it (pairs.txt, else pair.label) from the current folder. Positional arguments may be '' to keep
%   their default: features_file 'LFW_features.mat'; pairs_file pairs.txt, else pair.label, beside the
%   features file (View 2 pairs.txt, View 1 pairsDevTrain/pairsDevTest.txt or pair.label, detected from the
%   content); out_dir '.', where lfw_results.json and lfw_roc.png are written.
%
%   The features file holds 'data' (N x D, a row per image), 'label' (N x 1 cell of Name/Name_NNNN.jpg) and
%   optionally 'missing' (cell of keys that had no image). A pair with an image that has no feature is an error
%   listing every such pair, unless 'exclude_missing' is true: then those pairs are left out and listed.
%   'pca', DIM projects the features on DIM principal components fitted, for each fold, on the images of the
%   other folds' pairs.
%
%   The figures, their definitions and the printed table are exactly those of the Python twin
%   lightcnn/verification.py (see its module docstring); the returned struct has the same field names as its
%   results dict. Runs unchanged in MATLAB and GNU Octave 7+ (octave-cli, headless). From a shell:
%     octave-cli --no-history --eval "lfw_eval('LFW_features.mat', 'pairs.txt', 'results');"
%   The ';' keeps the returned struct from being printed. Without --no-history Octave 7 saves its command history
%   at exit, and where ~/.local/share does not exist every run ends with "error: ignoring const
%   execution_exception& while preparing to exit" (from Octave, not from lfw_eval; the exit status is unaffected).

  [features_file, pairs_file, out_dir, pca_dim, exclude_missing] = lfw_parse_arguments(varargin);
  if isempty(pairs_file)
    pairs_file = lfw_default_pairs(features_file);
  end

  feats = lfw_load_features(features_file);
  [pairs, pair_format] = lfw_read_pairs(pairs_file);
  n_listed = numel(pairs.is_same);
  n_folds = max(pairs.fold);

  % Rows of each pair's images; a key absent from 'label' or listed in 'missing' has no feature.
  [found1, rows1] = ismember(pairs.key1, feats.keys);
  [found2, rows2] = ismember(pairs.key2, feats.keys);
  complete = found1 & found2 & ~ismember(pairs.key1, feats.missing) & ~ismember(pairs.key2, feats.missing);
  lost = find(~complete);
  if ~isempty(lost)
    listing = lfw_pair_lines(pairs, lost);
    if ~exclude_missing
      error('lfw_eval:missing', ['%d of %d pairs have an image without a feature (exclude them with ' ...
            '--exclude-missing, or ''exclude_missing'', true in lfw_eval):\n%s'], numel(lost), n_listed, listing);
    end
    fprintf('excluded %d of %d pairs with an image that has no feature:\n%s\n', numel(lost), n_listed, listing);
  end
  rows1 = rows1(complete);
  rows2 = rows2(complete);
  folds = pairs.fold(complete);
  is_same = pairs.is_same(complete);

  if pca_dim > 0
    scores = lfw_pca_scores(feats.data, rows1, rows2, folds, pca_dim, n_folds);
  else
    scores = lfw_cosine(feats.data(rows1, :), feats.data(rows2, :));
  end
  figures = lfw_evaluate(scores, is_same, folds, n_folds);

  results = struct();
  results.features = features_file;
  results.pairs = pairs_file;
  results.pair_format = pair_format;
  names = fieldnames(figures);
  for i = 1:numel(names)
    results.(names{i}) = figures.(names{i});
  end
  results.n_listed = n_listed;
  results.n_excluded = numel(lost);
  results.excluded = [pairs.key1(lost), pairs.key2(lost)];
  results.pca_dim = pca_dim;

  fprintf('%s\n', lfw_format_table(results));
  if exist(out_dir, 'dir') ~= 7
    mkdir(out_dir);
  end
  json_file = fullfile(out_dir, 'lfw_results.json');
  png_file = fullfile(out_dir, 'lfw_roc.png');
  lfw_write_json(results, json_file);
  lfw_plot_roc(results, png_file);
  fprintf('wrote %s and %s\n', json_file, png_file);
end

