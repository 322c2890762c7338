function rates = blufr_accept_rates(genuine, ts)
%BLUFR_ACCEPT_RATES  Fraction of the genuine scores >= each threshold (NaN without genuine scores).
  rates = nan(size(ts));
  if isempty(genuine)
    return;
  end
  for i = 1:numel(ts)
    rates(i) = sum(genuine >= ts(i)) / numel(genuine);
  end
end
