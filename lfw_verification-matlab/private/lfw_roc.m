function roc = lfw_roc(scores, is_same)
%LFW_ROC  ROC points over the distinct scores, and AUC, EER and TPR@FAR.
%   Points k = 0..m for the distinct scores v_1 > ... > v_m: TP_k, FP_k count the matched / mismatched pairs
%   with score >= v_k (point 0: threshold +Inf). AUC: trapezoid rule (= Mann-Whitney, ties counted half).
%   EER: first k with d_k = (P - TP_k) N - FP_k P <= 0; FPR_k if d_k = 0, else linear interpolation between
%   points k-1 and k. TPR@FAR=x: highest TPR_k with FPR_k <= x. NaN when P = 0 or N = 0.
  scores = scores(:);
  is_same = logical(is_same(:));
  [u, ~, j] = unique(scores);
  j = j(:);
  m = numel(u);
  pos = flipud(accumarray(j, double(is_same), [m 1]));
  neg = flipud(accumarray(j, double(~is_same), [m 1]));
  tp = [0; cumsum(pos)];
  fp = [0; cumsum(neg)];
  n_pos = tp(end);
  n_neg = fp(end);
  roc = struct();
  roc.threshold = [Inf; flipud(u)];
  roc.tpr = tp / n_pos;
  roc.fpr = fp / n_neg;
  roc.auc = NaN;
  roc.eer = NaN;
  roc.one_minus_eer = NaN;
  roc.tpr_at_far_1pct = NaN;
  roc.tpr_at_far_0_1pct = NaN;
  roc.tpr_at_far_0 = NaN;
  if n_pos == 0 || n_neg == 0
    return;
  end
  roc.auc = sum((fp(2:end) - fp(1:end - 1)) .* (tp(2:end) + tp(1:end - 1))) / (2 * n_pos * n_neg);
  d = (n_pos - tp) * n_neg - fp * n_pos;
  k = find(d <= 0, 1);
  if d(k) == 0
    eer = roc.fpr(k);
  else
    eer = roc.fpr(k - 1) + d(k - 1) / (d(k - 1) - d(k)) * (roc.fpr(k) - roc.fpr(k - 1));
  end
  roc.eer = eer;
  roc.one_minus_eer = 1 - eer;
  roc.tpr_at_far_1pct = max(roc.tpr(roc.fpr <= 0.01));
  roc.tpr_at_far_0_1pct = max(roc.tpr(roc.fpr <= 0.001));
  roc.tpr_at_far_0 = max(roc.tpr(roc.fpr <= 0));
end
