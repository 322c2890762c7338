function blufr_write_json(r, path)
%BLUFR_WRITE_JSON  The results struct as blufr_results.json (the keys and nesting lightcnn/protocols/blufr.py
%   writes): the headline fields renamed vr_at_far_0.001 and dir_at_rank1_far_0.01, per-trial figures as lists (a
%   matrix as a list of rows, dir as trials x ranks x fars), numbers as %.17g, NaN and Inf as strings.
  json_write_file(path, fields_text(r, sprintf(',\n ')), 'blufr_eval:write');
end

function text = fields_text(r, separator)
  names = fieldnames(r);
  items = cell(1, numel(names));
  for i = 1:numel(names)
    key = regexprep(names{i}, '_0_(\d+)$', '_0.$1');
    items{i} = sprintf('%s: %s', lfw_json_string(key), value_text(names{i}, r.(names{i})));
  end
  text = strjoin(items, separator);
end

function text = value_text(name, value)
  scalars = {'mean', 'std', 'mean_minus_std', 'pca_dim', 'n_trials', 'images'};
  matrices = {'vr', 'vr_threshold', 'dir_mean', 'dir_threshold', 'cmc'};
  if ischar(value)
    text = lfw_json_string(value);
  elseif isstruct(value)
    text = ['{', fields_text(value, ', '), '}'];
  elseif iscell(value)
    strings = cellfun(@lfw_json_string, value(:)', 'UniformOutput', false);
    text = ['[', strjoin(strings, ', '), ']'];
  elseif any(strcmp(name, scalars))
    text = lfw_json_numbers(value);
  elseif any(strcmp(name, matrices))
    text = matrix_text(value);
  elseif strcmp(name, 'dir')
    parts = cell(1, size(value, 1));
    for t = 1:size(value, 1)
      parts{t} = matrix_text(reshape(value(t, :, :), size(value, 2), size(value, 3)));
    end
    text = ['[', strjoin(parts, ', '), ']'];
  else
    text = ['[', lfw_json_numbers(value), ']'];
  end
end

function text = matrix_text(m)
  parts = cell(1, size(m, 1));
  for i = 1:size(m, 1)
    parts{i} = ['[', lfw_json_numbers(m(i, :)), ']'];
  end
  text = ['[', strjoin(parts, ', '), ']'];
end
