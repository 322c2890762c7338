function feats = lfw_load_features(path)
%LFW_LOAD_FEATURES  Read an extractor's .mat: 'data' N x D, 'label' N keys, optional 'missing' keys.
%   Returns a struct with data (double), keys and missing (cell columns of Name/Name_NNNN.jpg).
  if exist(path, 'file') ~= 2
    error('lfw_eval:features', 'features file ''%s'' not found', path);
  end
  % MATLAB reads its own -v7.3 (HDF5); Octave does not, and its HDF5 library would print pages before failing.
  if exist('OCTAVE_VERSION', 'builtin') ~= 0 && lfw_is_v73(path)
    error('lfw_eval:features', ['%s: a MATLAB -v7.3 (HDF5) file, which Octave cannot read: save it as -v7 ' ...
          '(in MATLAB: s = load(FILE); save(FILE, ''-struct'', ''s'', ''-v7''))'], path);
  end
  try
    s = load(path);
  catch err
    error('lfw_eval:features', '%s: not a readable MATLAB .mat file (%s)', path, err.message);
  end
  if ~isfield(s, 'data') || ~isfield(s, 'label')
    error('lfw_eval:features', '%s: needs ''data'' (N x D) and ''label'' (N x 1 cell)', path);
  end
  data = double(s.data);
  if ndims(data) ~= 2
    error('lfw_eval:features', '%s: ''data'' must be N x D', path);
  end
  keys = lfw_image_key(lfw_cell_strings(s.label), path);
  if numel(keys) ~= size(data, 1)
    error('lfw_eval:features', '%s: %d labels for %d rows of data', path, numel(keys), size(data, 1));
  end
  [sorted_keys, order] = sort(keys);
  dup = find(strcmp(sorted_keys(1:end - 1), sorted_keys(2:end)), 1);
  if ~isempty(dup)
    rows = sort(order(dup:dup + 1));
    error('lfw_eval:features', '%s: label ''%s'' appears twice (rows %d and %d)', path, sorted_keys{dup}, ...
          rows(1), rows(2));
  end
  if ~all(isfinite(data(:)))
    error('lfw_eval:features', '%s: ''data'' holds non-finite values', path);
  end
  % Every pair would get the same score: no figure would mean anything (all zero gave 50%, AUC 0.5, threshold -Inf).
  if size(data, 1) > 0 && all(sum(data .* data, 2) == 0)
    error('lfw_eval:features', ['%s: all %d rows of ''data'' are zero: these are not features (every pair ' ...
          'would score the same)'], path, size(data, 1));
  end
  if size(data, 1) > 1 && all(all(bsxfun(@eq, data, data(1, :))))
    error('lfw_eval:features', ['%s: all %d rows of ''data'' are the same: these are not features (every ' ...
          'pair would score the same)'], path, size(data, 1));
  end
  missing = cell(0, 1);
  if isfield(s, 'missing')
    missing = lfw_image_key(lfw_cell_strings(s.missing), path);
  end
  feats = struct('data', data);
  feats.keys = keys;
  feats.missing = missing;
end

