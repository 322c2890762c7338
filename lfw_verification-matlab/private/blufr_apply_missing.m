function [trials, excluded] = blufr_apply_missing(config, rows, exclude_missing)
%BLUFR_APPLY_MISSING  Trials without the images that have no feature (rows == 0) and the 'excluded' record;
%   an error with the count and first 10 names unless exclude_missing.
  sets = {'train', 'test', 'gallery', 'probe'};
  trials = config.trials;
  used = false(numel(config.names), 1);
  counts = struct();
  for s = 1:4
    counts.(sets{s}) = zeros(1, numel(trials));
    for t = 1:numel(trials)
      index = trials(t).(sets{s});
      used(index) = true;
      counts.(sets{s})(t) = sum(rows(index) == 0);
    end
  end
  lost = find(used & rows == 0);
  names = regexprep(config.names(lost), '^(.+)(_\d+\.\w+)$', '$1/$1$2');
  if ~isempty(lost) && ~exclude_missing
    shown = sprintf('\n  %s', names{1:min(end, 10)});
    if numel(names) > 10
      shown = sprintf('%s\n  ... and %d more', shown, numel(names) - 10);
    end
    error('blufr_eval:missing', ['%d of %d BLUFR images have no feature (leave them out of every trial with ' ...
          '--exclude-missing, or ''exclude_missing'', true in blufr_eval):%s'], numel(lost), sum(used), shown);
  end
  if ~isempty(lost)
    fprintf('excluded %d of %d images without a feature from every trial; per trial (1..%d):\n', numel(lost), ...
            sum(used), numel(trials));
    for s = 1:4
      fprintf('  %-8s %s\n', sets{s}, strjoin(arrayfun(@num2str, counts.(sets{s}), 'UniformOutput', false), ' '));
    end
    for t = 1:numel(trials)
      for s = 1:4
        index = trials(t).(sets{s});
        trials(t).(sets{s}) = index(rows(index) > 0);
      end
    end
  end
  excluded = struct('images', numel(lost));
  excluded.names = names;
  for s = 1:4
    excluded.(sets{s}) = counts.(sets{s});
  end
end
