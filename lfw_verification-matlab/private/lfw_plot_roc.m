function lfw_plot_roc(r, path)
%LFW_PLOT_ROC  Save the ROC curve as a PNG without a display: logarithmic FAR axis (the face-verification
%   convention) from lfw_far_floor(N mismatched) to 1, points at FAR 0 drawn on its left edge, as
%   lightcnn/protocols/report.py draws it.
%   An invisible figure printed with -dpng (MATLAB, or Octave with a working graphics toolkit such as gnuplot).
%   octave-cli without a usable toolkit (no display, no gnuplot) cannot draw figures at all; the curve is then
%   rasterised here and written with imwrite: same curve and axes, no text.
  title_text = sprintf('LFW ROC: AUC %s, EER %s%%', lfw_num(r.auc, '%.4f'), lfw_num(100 * r.eer, '%.2f'));
  lo = lfw_far_floor(r.n_mismatched);
  fpr = max(r.roc_fpr(:), lo);
  tpr = r.roc_tpr(:);
  is_octave = exist('OCTAVE_VERSION', 'builtin') > 0;
  toolkits = {};
  if is_octave
    toolkits = available_graphics_toolkits();
  end
  if ~is_octave || ~isempty(toolkits)
    try
      h = figure('visible', 'off');
      if is_octave && ~any(strcmp(graphics_toolkit(h), toolkits))
        graphics_toolkit(h, toolkits{1});
      end
      chance = logspace(log10(lo), 0, 200);
      semilogx(chance, chance, '-', 'Color', [0.7 0.7 0.7]);
      hold on;
      semilogx(fpr, tpr, 'b-', 'LineWidth', 1.5);
      set(gca, 'XScale', 'log');
      axis([lo 1 0 1]);
      grid on;
      xlabel('false accept rate (FAR, log scale)');
      ylabel('true positive rate');
      title(title_text);
      print(h, '-dpng', path);
      close(h);
      return;
    catch err
      fprintf('ROC figure could not be drawn (%s); writing a plain raster instead\n', err.message);
    end
  end
  lfw_raster_roc(fpr, tpr, lo, path);
end
