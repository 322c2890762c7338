function path = lfw_default_pairs(features_file)
%LFW_DEFAULT_PAIRS  pairs.txt, else pair.label, beside the features file.
  folder = fileparts(features_file);
  names = {'pairs.txt', 'pair.label'};
  for i = 1:numel(names)
    path = fullfile(folder, names{i});
    if exist(path, 'file') == 2
      return;
    end
  end
  error('lfw_eval:pairs', 'neither pairs.txt nor pair.label beside ''%s''; pass the pair file', features_file);
end
