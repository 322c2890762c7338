function text = lfw_json_string(s)
%LFW_JSON_STRING  A char row as a JSON string (backslash and double quote escaped).
  s = strrep(s, '\', '\\');
  s = strrep(s, '"', '\"');
  text = ['"', s, '"'];
end
