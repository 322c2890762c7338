function results = blufr_eval(varargin)
%BLUFR_EVAL  The BLUFR benchmark on LFW (Liao et al., IJCB 2014): VR@FAR=0.1% and open-set DIR@rank1,FAR=1%.
%
%   results = blufr_eval(features_file, config, out_dir, 'pca', N, 'exclude_missing', true)
%
%   features_file: the extractor's .mat ('data' N x D, 'label' N x 1 cell of Name/Name_NNNN.jpg, optional
%   'missing'). config: blufr_lfw_config.mat or the folder of BLUFR's text lists (image_list.txt, labels.txt,
%   train_set.txt, test_set.txt, gallery_set.txt, probe_set.txt); both are required. out_dir (default '.') receives
%   blufr_results.json, blufr_roc.png, blufr_open_set_roc.png and blufr_cmc.png.
%
%   An image of the configuration without a feature is an error (count and first names) unless 'exclude_missing'
%   is true: it is then dropped from every set of every trial, counted per set. 'pca', N maps the features on N
%   principal components fitted on each trial's training images only.
%
%   The definitions (thresholds at each FAR, ties, ranks, the FAR grids) and the printed table are exactly those of
%   the Python twin lightcnn/protocols/blufr.py (see its module docstring); the JSON has the same keys. The returned
%   struct names the two headline figures vr_at_far_0_001 and dir_at_rank1_far_0_01 (a MATLAB field name cannot
%   hold a dot); the JSON calls them vr_at_far_0.001 and dir_at_rank1_far_0.01. From a shell:
%     octave-cli --no-history --eval "addpath('lfw_verification-matlab'); blufr_eval('F.mat', ...
%       '../shared/data/lfw/blufr/blufr_lfw_config.mat', 'D', 'exclude_missing', true);"

  [features_file, config_path, out_dir, pca_dim, exclude_missing] = blufr_parse_arguments(varargin);
  feats = lfw_load_features(features_file);
  config = blufr_load_config(config_path);
  rows = blufr_feature_rows(config, feats);
  [trials, excluded] = blufr_apply_missing(config, rows, exclude_missing);
  data = zeros(numel(config.names), size(feats.data, 2));
  data(rows > 0, :) = feats.data(rows(rows > 0), :);
  grids = blufr_grids();

  per_trial = cell(numel(trials), 1);
  for t = 1:numel(trials)
    started = tic;
    r = blufr_trial(data, config.labels, trials(t), pca_dim, grids);
    per_trial{t} = r;
    fprintf(['trial %2d: %d test images, %d genuine / %d impostor pairs, %d genuine / %d impostor probes: ' ...
             'VR@FAR=0.1%% %.2f%%, DIR@rank1,FAR=1%% %.2f%% (%.1f s)\n'], t, r.n_test, r.n_genuine_pairs, ...
            r.n_impostor_pairs, r.n_genuine_probes, r.n_impostor_probes, 100 * r.vr(grids.vr_at), ...
            100 * r.dir(grids.rank_at, grids.dir_at), toc(started));
  end
  results = blufr_collect(per_trial, excluded, pca_dim, grids);
  results = orderfields_first(results, features_file, config_path);

  fprintf('%s\n', blufr_format_table(results));
  if exist(out_dir, 'dir') ~= 7
    mkdir(out_dir);
  end
  json_file = fullfile(out_dir, 'blufr_results.json');
  blufr_write_json(results, json_file);
  pictures = blufr_plot_all(results, grids, out_dir);
  fprintf('wrote %s, %s\n', json_file, strjoin(pictures, ', '));
end

function r = orderfields_first(figures, features_file, config_path)
  r = struct('features', features_file, 'config', config_path);
  names = fieldnames(figures);
  for i = 1:numel(names)
    r.(names{i}) = figures.(names{i});
  end
end
