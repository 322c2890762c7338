function ok = lfw_is_uint(token)
%LFW_IS_UINT  True for a token of ASCII digits with a value above 0 (an LFW image index or a header count).
  ok = ~isempty(regexp(token, '^[0-9]+$', 'once')) && str2double(token) > 0;
end
