function [pairs, fmt] = lfw_read_pairs(path)
%LFW_READ_PAIRS  Read an LFW pair file; the format is detected from the content.
%   [pairs, fmt] = lfw_read_pairs(path) returns a struct of columns key1, key2 (cells of Name/Name_NNNN.jpg),
%   is_same (logical) and fold (1-based), in file order, and fmt, the detected format:
%     'pairs.txt (View 2)'  header 'F<TAB>n', then F blocks of n matched 'Name i j' and n mismatched
%                           'Name1 i Name2 j' lines; fold k is block k.
%     'pairs.txt (View 1)'  header 'N', then N matched and N mismatched lines; 10 stratified folds.
%     'pair.label'          '<1|0> key1 key2' per line, no header; if the labels form 10 blocks of n ones then
%                           n zeros (the file written from pairs.txt), the blocks are the folds, else 10
%                           stratified folds.
%   Stratified: the i-th matched pair (0-based, file order) is in fold floor(10 i / n_matched) + 1, the i-th
%   mismatched pair in fold floor(10 i / n_mismatched) + 1. Blank lines are ignored, CRLF is accepted; errors
%   name the file, the line number and the line. The same rules as lightcnn/protocols/lfw_pairs.py.
  if exist(path, 'file') ~= 2
    error('lfw_eval:pairs', 'pair file ''%s'' not found', path);
  end
  text = fileread(path);
  if numel(text) >= 3 && isequal(double(text(1:3)), [239 187 191])
    text = text(4:end);
  elseif ~isempty(text) && double(text(1)) == 65279
    text = text(2:end);
  end
  lines = regexp(text, '\r\n|\n|\r', 'split');
  lines = strtrim(lines(:));
  numbers = (1:numel(lines))';
  keep = ~cellfun(@isempty, lines);
  lines = lines(keep);
  numbers = numbers(keep);
  if isempty(lines)
    error('lfw_eval:pairs', '%s: no pairs (empty file)', path);
  end
  head = regexp(lines{1}, '\S+', 'match');

  if numel(head) >= 1 && numel(head) <= 2 && lfw_is_uint(head{1}) && lfw_is_uint(head{end})
    values = str2double(head);
    if numel(head) == 2
      fmt = 'pairs.txt (View 2)';
      n_blocks = values(1);
      n = values(2);
    else
      fmt = 'pairs.txt (View 1)';
      n_blocks = 1;
      n = values(1);
    end
    m = numel(lines) - 1;
    if m ~= 2 * n * n_blocks
      error('lfw_eval:pairs', '%s:%d: header ''%s'' announces %d pair lines, the file has %d', path, ...
            numbers(1), lines{1}, 2 * n * n_blocks, m);
    end
    body = lines(2:end);
    is_same = mod((0:m - 1)', 2 * n) < n;
    fold = floor((0:m - 1)' / (2 * n)) + 1;
    same_tokens = regexp(body, '^(\S+)\s+([0-9]+)\s+([0-9]+)$', 'tokens', 'once');
    diff_tokens = regexp(body, '^(\S+)\s+([0-9]+)\s+(\S+)\s+([0-9]+)$', 'tokens', 'once');
    ok = false(m, 1);
    ok(is_same) = ~cellfun(@isempty, same_tokens(is_same));
    ok(~is_same) = ~cellfun(@isempty, diff_tokens(~is_same));
    key1 = cell(m, 1);
    key2 = cell(m, 1);
    if all(ok)
      % Octave gives each line's tokens as a column, MATLAB as a row: concatenate, then reshape
      t = reshape([same_tokens{is_same}], 3, [])';
      u = reshape([diff_tokens{~is_same}], 4, [])';
      ok(is_same) = str2double(t(:, 2)) > 0 & str2double(t(:, 3)) > 0;
      ok(~is_same) = str2double(u(:, 2)) > 0 & str2double(u(:, 4)) > 0;
      key1(is_same) = lfw_pair_keys(t(:, 1), t(:, 2));
      key2(is_same) = lfw_pair_keys(t(:, 1), t(:, 3));
      key1(~is_same) = lfw_pair_keys(u(:, 1), u(:, 2));
      key2(~is_same) = lfw_pair_keys(u(:, 3), u(:, 4));
    end
    bad = find(~ok, 1);
    if ~isempty(bad)
      expected = {'a mismatched pair ''Name1 i Name2 j''', 'a matched pair ''Name i j'''};
      error('lfw_eval:pairs', '%s:%d: expected %s, got ''%s''', path, numbers(bad + 1), ...
            expected{is_same(bad) + 1}, body{bad});
    end
    if n_blocks == 1 && numel(head) == 1
      fold = lfw_stratified_folds(is_same, 10);
    end

  elseif numel(head) == 3 && any(strcmp(head{1}, {'0', '1'}))
    fmt = 'pair.label';
    t = regexp(lines, '^([01])\s+(\S+)\s+(\S+)$', 'tokens', 'once');
    bad = find(cellfun(@isempty, t), 1);
    if ~isempty(bad)
      error('lfw_eval:pairs', '%s:%d: expected ''<1|0> Name/Name_NNNN.jpg Name/Name_NNNN.jpg'', got ''%s''', ...
            path, numbers(bad), lines{bad});
    end
    t = reshape([t{:}], 3, [])';
    key1 = lfw_image_key(t(:, 2), path, numbers);
    key2 = lfw_image_key(t(:, 3), path, numbers);
    is_same = strcmp(t(:, 1), '1');
    fold = lfw_block_folds(is_same, 10);
    if isempty(fold)
      fold = lfw_stratified_folds(is_same, 10);
    end

  else
    error('lfw_eval:pairs', ['%s:%d: not a pairs.txt header (''10<TAB>300'' or ''N'') nor a pair.label line ' ...
          '(''<1|0> key1 key2''): ''%s'''], path, numbers(1), lines{1});
  end
  pairs = struct('is_same', is_same, 'fold', fold);
  pairs.key1 = key1;
  pairs.key2 = key2;
end
