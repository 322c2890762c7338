function lfw_write_json(r, path)
%LFW_WRITE_JSON  Write the results struct as JSON (what lightcnn/verification.py writes and reads).
%   Char fields become strings, the n x 2 cell 'excluded' a list of [key1, key2], the fold_* and roc_* fields
%   lists, other numbers scalars (%.17g); Inf, -Inf and NaN are written as the strings "Infinity",
%   "-Infinity" and "NaN", since JSON has no such numbers.
  names = fieldnames(r);
  items = cell(numel(names), 1);
  for i = 1:numel(names)
    name = names{i};
    value = r.(name);
    if ischar(value)
      text = lfw_json_string(value);
    elseif iscell(value)
      text = '';
      for j = 1:size(value, 1)
        text = sprintf('%s%s[%s, %s]', text, repmat(', ', 1, double(j > 1)), lfw_json_string(value{j, 1}), ...
                       lfw_json_string(value{j, 2}));
      end
      text = ['[', text, ']'];
    elseif numel(value) ~= 1 || strncmp(name, 'fold_', 5) || strncmp(name, 'roc_', 4)
      text = ['[', lfw_json_numbers(value), ']'];
    else
      text = lfw_json_numbers(value);
    end
    items{i} = sprintf(' %s: %s', lfw_json_string(name), text);
  end
  fid = fopen(path, 'w');
  if fid < 0
    error('lfw_eval:write', 'cannot write %s', path);
  end
  body = sprintf('%s,\n', items{:});
  fprintf(fid, '{\n%s\n}\n', body(1:end - 2));
  fclose(fid);
end
