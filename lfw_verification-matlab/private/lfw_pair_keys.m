function keys = lfw_pair_keys(names, indices)
%LFW_PAIR_KEYS  Keys 'Name/Name_%04d.jpg' for cells of names and index digit strings, as pairs.txt numbers them.
  names = names(:);
  if isempty(names)
    keys = cell(0, 1);
    return;
  end
  numbers = regexp(sprintf('%04d|', str2double(indices(:))), '\|', 'split');
  keys = strcat(names, '/', names, '_', numbers(1:end - 1)', '.jpg');
end
