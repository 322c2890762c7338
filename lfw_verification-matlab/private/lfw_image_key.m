function keys = lfw_image_key(paths, source, numbers)
%LFW_IMAGE_KEY  '/lfw_patch/Name/Name_0001.jpg' -> 'Name/Name_0001.jpg': the last two path components.
%   paths is a char row or a cell of them (a cell comes back as a column); source names the file in errors,
%   and numbers (optional) the line number of each path.
  single = ischar(paths);
  if single
    paths = {paths};
  end
  paths = strtrim(paths(:));
  pattern = '^(?:.*[/\\])?([^/\\]+)[/\\]+([^/\\]+)[/\\]*$';
  bad = find(cellfun(@isempty, regexp(paths, pattern, 'once')), 1);
  if ~isempty(bad)
    if nargin >= 3
      source = sprintf('%s:%d', source, numbers(bad));
    end
    error('lfw_eval:key', '%s: image path ''%s'' has no <Name>/<file> components', source, paths{bad});
  end
  keys = regexprep(paths, pattern, '$1/$2');
  if single
    keys = keys{1};
  end
end
