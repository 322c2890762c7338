function json_write_file(path, fields, error_id)
%JSON_WRITE_FILE  Write one JSON object, its fields already as text ('"key": value' items joined by ',\n '), to path;
%   an error with error_id naming the file where it cannot be written. The file end of lfw_write_json and
%   blufr_write_json.
  fid = fopen(path, 'w');
  if fid < 0
    error(error_id, 'cannot write %s', path);
  end
  fprintf(fid, '{\n %s\n}\n', fields);
  fclose(fid);
end
