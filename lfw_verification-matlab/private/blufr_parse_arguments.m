function [features_file, config_path, out_dir, pca_dim, exclude_missing] = blufr_parse_arguments(args)
%BLUFR_PARSE_ARGUMENTS  blufr_eval's arguments: features_file and config (both required), out_dir (default '.'),
%   then 'pca', N and 'exclude_missing', true: lfw_eval's own parser, with the config in the pair file's place.
  usage = ['usage: blufr_eval(features_file, config, out_dir, ''pca'', N, ''exclude_missing'', true) ' ...
           '(config: blufr_lfw_config.mat or the folder of BLUFR''s text lists)'];
  options = {'pca', 'exclude_missing', 'exclude_zero_rows'};
  if numel(args) < 2 || ~all(cellfun(@ischar, args(1:2))) || any(cellfun(@isempty, args(1:2))) || ...
     any(ismember(lower(args(1:2)), options)) || any(strcmpi(args(cellfun(@ischar, args)), 'exclude_zero_rows'))
    error('blufr_eval:usage', usage);
  end
  try
    [features_file, config_path, out_dir, pca_dim, exclude_missing] = lfw_parse_arguments(args);
  catch err
    error('blufr_eval:usage', '%s', strrep(err.message, 'lfw_eval(features_file, pairs_file', ...
                                           'blufr_eval(features_file, config'));
  end
end
