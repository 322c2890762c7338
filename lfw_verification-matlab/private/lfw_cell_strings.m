function c = lfw_cell_strings(value)
%LFW_CELL_STRINGS  A cell of strings or a char matrix (a string per row) -> cell column, blanks trimmed.
  if isempty(value)
    c = cell(0, 1);
  elseif iscellstr(value)
    c = strtrim(value(:));
  elseif iscell(value)
    c = cell(numel(value), 1);
    for i = 1:numel(value)
      c{i} = strtrim(char(value{i}));
    end
  elseif ischar(value)
    c = strtrim(cellstr(value));
  else
    error('lfw_eval:features', 'expected a cell of strings, got a %s', class(value));
  end
end
