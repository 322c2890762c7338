function text = lfw_num(x, spec)
%LFW_NUM  sprintf(spec, x), with inf, -inf and nan spelled as Python prints them (the tables must match).
  if isnan(x)
    text = 'nan';
  elseif isinf(x) && x > 0
    text = 'inf';
  elseif isinf(x)
    text = '-inf';
  else
    text = sprintf(spec, x);
  end
end
