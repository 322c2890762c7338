function config = blufr_load_config(path)
%BLUFR_LOAD_CONFIG  BLUFR's configuration from blufr_lfw_config.mat or the folder of its text lists.
%   Returns names (cell column of bare file names), labels (double column) and trials (struct array with train,
%   test, gallery, probe: 1-based index columns), the same numbers from either source.
  sets = {'train', 'test', 'gallery', 'probe'};
  if exist(path, 'dir') == 7
    names = read_lines(fullfile(path, 'image_list.txt'));
    labels = str2double(read_lines(fullfile(path, 'labels.txt')));
    if any(isnan(labels))
      error('blufr_eval:config', '%s: not one whole number per line', fullfile(path, 'labels.txt'));
    end
    files = {'train_set.txt', 'test_set.txt', 'gallery_set.txt', 'probe_set.txt'};
    for s = 1:4
      cells.(sets{s}) = read_set_file(fullfile(path, files{s}));
    end
  elseif exist(path, 'file') == 2
    try
      m = load(path);
    catch err
      error('blufr_eval:config', '%s: not a readable MATLAB .mat file (%s)', path, err.message);
    end
    mat_names = {'trainIndex', 'testIndex', 'galIndex', 'probIndex'};
    needed = [{'imageList', 'labels'}, mat_names];
    for i = 1:numel(needed)
      if ~isfield(m, needed{i})
        error('blufr_eval:config', '%s: no ''%s'' variable (not a BLUFR configuration)', path, needed{i});
      end
    end
    names = lfw_cell_strings(m.imageList);
    labels = double(m.labels(:));
    for s = 1:4
      cells.(sets{s}) = m.(mat_names{s})(:);
    end
  else
    error('blufr_eval:config', 'no BLUFR configuration (a .mat file or the folder of its lists): %s', path);
  end
  if numel(labels) ~= numel(names)
    error('blufr_eval:config', '%s: %d labels for %d images', path, numel(labels), numel(names));
  end
  n_trials = numel(cells.train);
  if n_trials == 0 || any(cellfun(@(s) numel(cells.(s)), sets) ~= n_trials)
    error('blufr_eval:config', '%s: no trials, or the sets hold different numbers of trials', path);
  end
  trials = struct('train', cell(n_trials, 1), 'test', [], 'gallery', [], 'probe', []);
  for t = 1:n_trials
    for s = 1:4
      index = double(cells.(sets{s}){t}(:));
      if any(index < 1 | index > numel(names))
        error('blufr_eval:config', '%s: %s set of trial %d: indexes outside 1..%d', path, sets{s}, t, numel(names));
      end
      trials(t).(sets{s}) = index;
    end
  end
  config = struct('labels', labels(:));
  config.names = names(:);
  config.trials = trials;
end

function lines = read_lines(path)
  text = fileread(path);
  if numel(text) >= 3 && all(double(text(1:3)) == [239 187 191])  % a UTF-8 byte order mark
    text = text(4:end);
  end
  lines = strtrim(strsplit(text, {sprintf('\r\n'), sprintf('\n')}))';
  lines = lines(~cellfun(@isempty, lines));
end

function trials = read_set_file(path)
%   The number of trials, then per trial a count and that many 'index, name' lines.
  lines = read_lines(path);
  bad = sprintf('%s: not a BLUFR set list (trials, then per trial a count and ''index, name'' lines)', path);
  n_trials = str2double(lines{1});
  if isnan(n_trials)
    error('blufr_eval:config', bad);
  end
  trials = cell(n_trials, 1);
  at = 2;
  for t = 1:n_trials
    count = str2double(lines{at});
    if isnan(count) || at + count > numel(lines)
      error('blufr_eval:config', bad);
    end
    block = lines(at + 1:at + count);
    trials{t} = str2double(regexprep(block, ',.*$', ''));
    if any(isnan(trials{t}))
      error('blufr_eval:config', bad);
    end
    at = at + 1 + count;
  end
end
