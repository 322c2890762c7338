function lfw_raster_roc(fpr, tpr, path)
%LFW_RASTER_ROC  Draw an ROC curve into a 480 x 480 RGB image (box, 0.1 grid, chance diagonal) and imwrite it.
%   For headless Octave without a graphics toolkit; no text, both axes run from 0 to 1 (origin bottom left).
  side = 480;
  margin = 40;
  span = side - 2 * margin;
  img = 255 * ones(side, side, 3);
  ticks = margin + round((0:0.1:1) * span);
  img(margin:side - margin, ticks, :) = 225;
  img(side - ticks, margin:side - margin, :) = 225;
  img(margin:side - margin, [margin, side - margin], :) = 0;
  img([margin, side - margin], margin:side - margin, :) = 0;
  ok = isfinite(fpr(:)) & isfinite(tpr(:));
  curves = {[0; 1], [0; 1], [170 170 170]; fpr(ok), tpr(ok), [0 0 255]};
  for c = 1:size(curves, 1)
    x = curves{c, 1}(:);
    y = curves{c, 2}(:);
    % sample every segment at least once per pixel
    dx = diff(x);
    dy = diff(y);
    steps = ceil(max(abs(dx), abs(dy)) * span) + 2;
    segment = repelem((1:numel(dx))', steps);
    first = cumsum([1; steps(1:end - 1)]);
    t = ((1:sum(steps))' - first(segment)) ./ (steps(segment) - 1);
    cols = margin + round((x(segment) + t .* dx(segment)) * span);
    rows = side - margin - round((y(segment) + t .* dy(segment)) * span);
    for channel = 1:3
      plane = img(:, :, channel);
      plane(sub2ind([side side], rows, cols)) = curves{c, 3}(channel);
      plane(sub2ind([side side], max(rows - 1, 1), cols)) = curves{c, 3}(channel);
      img(:, :, channel) = plane;
    end
  end
  imwrite(uint8(img), path);
end
