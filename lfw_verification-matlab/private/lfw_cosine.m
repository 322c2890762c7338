function s = lfw_cosine(x1, x2)
%LFW_COSINE  Row-wise cosine similarity of two n x D matrices, in double; 0 where a norm is 0.
%   Row sums of elementwise products, so identical rows give bit-identical scores (exact ties).
  x1 = double(x1);
  x2 = double(x2);
  dots = sum(x1 .* x2, 2);
  norms = sqrt(sum(x1 .* x1, 2)) .* sqrt(sum(x2 .* x2, 2));
  s = zeros(size(dots));
  nonzero = norms ~= 0;
  s(nonzero) = dots(nonzero) ./ norms(nonzero);
end
