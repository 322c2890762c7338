function lfw_raster_roc(fpr, tpr, lo, path)
%LFW_RASTER_ROC  Draw an ROC curve into a 480 x 480 RGB image and imwrite it: box, grid (a line per decade of FAR,
%   every 0.1 of TPR), chance line, the curve in blue. For headless Octave without a graphics toolkit; no text.
%   FAR runs from lo (left) to 1 on a logarithmic axis, TPR from 0 (bottom) to 1. Points are mapped to pixels
%   first and joined by straight segments there, as a plotting library joins them on a log axis; FAR below lo
%   is drawn at lo. lightcnn/tests check the pixel of every ROC point against this mapping.
  side = 480;
  margin = 40;
  span = side - 2 * margin;
  decades = -log10(lo);
  col_of = @(x) margin + (log10(max(x, lo)) + decades) / decades * span;
  row_of = @(y) side - margin - y * span;
  img = 255 * ones(side, side, 3);
  vertical = round(col_of(10 .^ (-decades:0)));
  horizontal = round(row_of(0:0.1:1));
  img(margin:side - margin, vertical, :) = 225;
  img(horizontal, margin:side - margin, :) = 225;
  img(margin:side - margin, [margin, side - margin], :) = 0;
  img([margin, side - margin], margin:side - margin, :) = 0;
  ok = isfinite(fpr(:)) & isfinite(tpr(:));
  chance = logspace(-decades, 0, 200)';
  curves = {col_of(chance), row_of(chance), [170 170 170]; col_of(fpr(ok)), row_of(tpr(ok)), [0 0 255]};
  for c = 1:size(curves, 1)
    x = curves{c, 1}(:);
    y = curves{c, 2}(:);
    if numel(x) < 2
      x = [x; x];
      y = [y; y];
    end
    % sample every segment at least once per pixel, in pixel coordinates
    dx = diff(x);
    dy = diff(y);
    steps = ceil(max(abs(dx), abs(dy))) + 2;
    segment = repelem((1:numel(dx))', steps);
    first = cumsum([1; steps(1:end - 1)]);
    t = ((1:sum(steps))' - first(segment)) ./ (steps(segment) - 1);
    cols = round(x(segment) + t .* dx(segment));
    rows = round(y(segment) + t .* dy(segment));
    for channel = 1:3
      plane = img(:, :, channel);
      plane(sub2ind([side side], rows, cols)) = curves{c, 3}(channel);
      plane(sub2ind([side side], max(rows - 1, 1), cols)) = curves{c, 3}(channel);
      img(:, :, channel) = plane;
    end
  end
  imwrite(uint8(img), path);
end
