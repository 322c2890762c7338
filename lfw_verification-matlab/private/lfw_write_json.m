function lfw_write_json(r, path)
%LFW_WRITE_JSON  Write the results struct as JSON (what lightcnn/protocols/report.py writes and reads).
%   Char fields become strings, the n x 2 cell 'excluded' a list of [key1, key2], a cell column a list of
%   strings, a struct (zero_rows) an object of the same kinds, the fold_* and roc_* fields lists, other numbers
%   scalars (%.17g); Inf, -Inf and NaN are written as the strings "Infinity", "-Infinity" and "NaN", since JSON
%   has no such numbers.
  json_write_file(path, fields_text(r, sprintf(',\n ')), 'lfw_eval:write');
end

function text = fields_text(r, separator)
  names = fieldnames(r);
  items = cell(1, numel(names));
  for i = 1:numel(names)
    items{i} = sprintf('%s: %s', lfw_json_string(names{i}), value_text(names{i}, r.(names{i})));
  end
  text = strjoin(items, separator);
end

function text = value_text(name, value)
  if ischar(value)
    text = lfw_json_string(value);
  elseif isstruct(value)
    text = ['{', fields_text(value, ', '), '}'];
  elseif iscell(value) && size(value, 2) == 2
    text = '';
    for j = 1:size(value, 1)
      text = sprintf('%s%s[%s, %s]', text, repmat(', ', 1, double(j > 1)), lfw_json_string(value{j, 1}), ...
                     lfw_json_string(value{j, 2}));
    end
    text = ['[', text, ']'];
  elseif iscell(value)
    strings = cellfun(@lfw_json_string, value(:)', 'UniformOutput', false);
    text = ['[', strjoin(strings, ', '), ']'];
  elseif numel(value) ~= 1 || strncmp(name, 'fold_', 5) || strncmp(name, 'roc_', 4)
    text = ['[', lfw_json_numbers(value), ']'];
  else
    text = lfw_json_numbers(value);
  end
end
