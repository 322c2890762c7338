function lfw_plot_roc(r, path)
%LFW_PLOT_ROC  Save the ROC curve (linear axes) as a PNG without a display.
%   An invisible figure printed with -dpng (MATLAB, or Octave with a working graphics toolkit such as gnuplot).
%   octave-cli without a usable toolkit (no display, no gnuplot) cannot draw figures at all; the curve is then
%   rasterised here and written with imwrite: same curve, no text.
  title_text = sprintf('LFW ROC: AUC %s, EER %s%%', lfw_num(r.auc, '%.4f'), lfw_num(100 * r.eer, '%.2f'));
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
      plot([0 1], [0 1], '-', 'Color', [0.7 0.7 0.7]);
      hold on;
      plot(r.roc_fpr, r.roc_tpr, 'b-', 'LineWidth', 1.5);
      axis([0 1 0 1]);
      grid on;
      xlabel('false positive rate (FAR)');
      ylabel('true positive rate');
      title(title_text);
      print(h, '-dpng', path);
      close(h);
      return;
    catch err
      fprintf('ROC figure could not be drawn (%s); writing a plain raster instead\n', err.message);
    end
  end
  lfw_raster_roc(r.roc_fpr, r.roc_tpr, path);
end
