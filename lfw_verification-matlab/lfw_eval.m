function results = lfw_eval(varargin)
%LFW_EVAL  LFW verification: 10-fold accuracy, ROC, AUC, EER and TPR@FAR of extracted features.
%
%   results = lfw_eval()
%   results = lfw_eval(features_file, pairs_file, out_dir, 'pca', DIM, 'exclude_missing', true, ...
%                      'exclude_zero_rows', true)
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
%   A file whose rows are all zero, or all the same, is refused. Zero rows (norm 0) are reported (count and
%   names, in the table and the JSON's zero_rows) and their pairs scored as cosine 0, unless 'exclude_zero_rows'
%   is true: then those pairs are left out and listed, like missing ones.
%   'pca', DIM projects the features on DIM principal components fitted, for each fold, on the images of the
%   other folds' pairs.
%
%   The figures, their definitions and the printed table are exactly those of the Python twin
%   lightcnn/protocols/tenfold.py (see its module docstring); the returned struct has the same field names as its
%   results dict. Runs unchanged in MATLAB and GNU Octave 7+ (octave-cli, headless). From a shell:
%     octave-cli --no-history --eval "lfw_eval('LFW_features.mat', 'pairs.txt', 'results');"
%   The ';' keeps the returned struct from being printed. Without --no-history Octave 7 saves its command history
%   at exit, and where ~/.local/share does not exist every run ends with "error: ignoring const
%   execution_exception& while preparing to exit" (from Octave, not from lfw_eval; the exit status is unaffected).

  [features_file, pairs_file, out_dir, pca_dim, exclude_missing, exclude_zero_rows] = lfw_parse_arguments(varargin);
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

  % Zero rows (an image the network mapped to nothing) score cosine 0 with anything: said, and optionally left out.
  zero = sum(feats.data .* feats.data, 2) == 0 & ~ismember(feats.keys, feats.missing);
  zero_names = feats.keys(zero);
  on_zero = complete & (ismember(rows1, find(zero)) | ismember(rows2, find(zero)));
  keep = complete;
  if exclude_zero_rows
    keep = complete & ~on_zero;
  end
  if ~isempty(zero_names)
    if exclude_zero_rows
      listing = '';
      if any(on_zero)
        listing = [sprintf(':\n'), lfw_pair_lines(pairs, find(on_zero))];
      end
      fprintf('excluded %d of %d pairs with an image whose feature is zero (%d of %d feature rows have norm 0)%s\n', ...
              sum(on_zero), n_listed, numel(zero_names), numel(feats.keys), listing);
    else
      shown = zero_names(1:min(end, 10));  % lightcnn/protocols/tenfold.py's ZERO_ROWS_SHOWN; the JSON has them all
      listing = sprintf('\n  %s', shown{:});
      if numel(zero_names) > numel(shown)
        listing = sprintf('%s\n  ... and %d more', listing, numel(zero_names) - numel(shown));
      end
      fprintf(['%d of %d feature rows have norm 0, used by %d pairs, %s (leave those pairs out with ' ...
               '--exclude-zero-rows, or ''exclude_zero_rows'', true in lfw_eval):%s\n'], numel(zero_names), ...
              numel(feats.keys), sum(on_zero), lfw_zero_scoring(pca_dim), listing);
    end
  end
  dropped = find(~keep);
  rows1 = rows1(keep);
  rows2 = rows2(keep);
  folds = pairs.fold(keep);
  is_same = pairs.is_same(keep);

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
  results.n_excluded = numel(dropped);
  results.excluded = [pairs.key1(dropped), pairs.key2(dropped)];
  results.pca_dim = pca_dim;
  results.zero_rows = struct('count', numel(zero_names), 'names', {zero_names}, 'n_pairs', sum(on_zero), ...
                             'n_excluded', sum(on_zero) * exclude_zero_rows);

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

