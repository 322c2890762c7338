function v73 = lfw_is_v73(path)
%LFW_IS_V73  True for a MATLAB -v7.3 file: HDF5 behind a MAT header whose version field (bytes 125-126) is 2.
%   Read as scipy reads it: the byte order mark 'IM' or 'MI' (bytes 127-128) says which byte is the major version.
  v73 = false;
  fid = fopen(path, 'r');
  if fid < 0
    return;
  end
  head = fread(fid, 128, 'uint8=>double')';
  fclose(fid);
  if numel(head) < 128 || any(head(1:4) == 0)  % a MAT v4 file has a zero in its first 4 bytes
    return;
  end
  if head(127) == double('I')
    v73 = head(126) == 2;
  else
    v73 = head(125) == 2;
  end
end
