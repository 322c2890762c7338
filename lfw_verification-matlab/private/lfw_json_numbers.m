function text = lfw_json_numbers(values)
%LFW_JSON_NUMBERS  Numbers as '%.17g' joined by ', '; Inf, -Inf, NaN as "Infinity", "-Infinity", "NaN".
  values = double(values(:)');
  if isempty(values)
    text = '';
    return;
  end
  text = sprintf('%.17g, ', values);
  text = text(1:end - 2);
  text = regexprep(text, 'NaN', '"NaN"');
  text = regexprep(text, '(-?)Inf', '"$1Infinity"');
end
