function rows = blufr_feature_rows(config, feats)
%BLUFR_FEATURE_ROWS  Row of each configuration image in feats.data (0 where absent or listed missing).
%   BLUFR's bare names 'Name_0001.jpg' become the extractor's keys 'Name/Name_0001.jpg'.
  names = config.names;
  bare = cellfun(@isempty, regexp(names, '[/\\]', 'once'));
  keys = names;
  keys(bare) = regexprep(names(bare), '^(.+)(_\d+\.\w+)$', '$1/$1$2');
  if any(~bare)
    keys(~bare) = lfw_image_key(names(~bare), 'BLUFR configuration');
  end
  wrong = find(bare & cellfun(@isempty, regexp(names, '^(.+)_\d+\.\w+$', 'once')), 1);
  if ~isempty(wrong)
    error('blufr_eval:config', 'BLUFR image name ''%s'' is not Name_NNNN.ext', names{wrong});
  end
  [~, rows] = ismember(keys, feats.keys);
  rows(ismember(keys, feats.missing)) = 0;
  rows = rows(:);
end
