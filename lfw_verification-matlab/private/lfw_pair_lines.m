function text = lfw_pair_lines(pairs, which)
%LFW_PAIR_LINES  One line per listed pair ('  fold  3  same  key1  key2'), joined by newlines.
  lines = cell(numel(which), 1);
  labels = {'diff', 'same'};
  for i = 1:numel(which)
    j = which(i);
    lines{i} = sprintf('  fold %2d  %-4s  %s  %s', pairs.fold(j), labels{pairs.is_same(j) + 1}, ...
                       pairs.key1{j}, pairs.key2{j});
  end
  text = sprintf('%s\n', lines{:});
  text = text(1:end - 1);
end
