function paths = blufr_plot_all(r, grids, out_dir)
%BLUFR_PLOT_ALL  blufr_roc.png (VR against FAR, log axis from 1e-8), blufr_open_set_roc.png (DIR at rank 1 against
%   FAR, log axis from 1e-4) and blufr_cmc.png (CMC, log rank axis 1..100), means over the trials, as
%   lightcnn/protocols/blufr_report.py draws them. Octave without a graphics toolkit writes plain rasters (the same
%   curves and log axes, a grid line per decade, no text).
  paths = {fullfile(out_dir, 'blufr_roc.png'), fullfile(out_dir, 'blufr_open_set_roc.png'), ...
           fullfile(out_dir, 'blufr_cmc.png')};
  plot_curve(paths{1}, r.far_grid, r.vr_mean, 1e-8, 1, sprintf('BLUFR verification: VR@FAR=0.1%% %.2f%% (mean - std %.2f%%)', ...
             100 * r.vr_at_far_0_001.mean, 100 * r.vr_at_far_0_001.mean_minus_std), ...
             'false accept rate (FAR, log scale)', 'verification rate (mean over trials)');
  plot_curve(paths{2}, r.open_set_far_grid, r.dir_mean(grids.rank_at, :), 1e-4, 1, ...
             sprintf('BLUFR open-set, rank 1: DIR@FAR=1%% %.2f%% (mean - std %.2f%%)', ...
                     100 * r.dir_at_rank1_far_0_01.mean, 100 * r.dir_at_rank1_far_0_01.mean_minus_std), ...
             'false accept rate of impostor probes (log scale)', 'detection and identification rate');
  plot_curve(paths{3}, r.ranks, r.cmc_mean, 1, 100, 'BLUFR open-set CMC (genuine probes)', 'rank (log scale)', ...
             'identification rate (mean over trials)');
end

function plot_curve(path, x, y, lo, hi, title_text, x_text, y_text)
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
      semilogx(max(x, lo), y, 'b-', 'LineWidth', 1.5);
      axis([lo hi 0 1]);
      grid on;
      xlabel(x_text);
      ylabel(y_text);
      title(title_text);
      print(h, '-dpng', path);
      close(h);
      return;
    catch err
      fprintf('figure could not be drawn (%s); writing a plain raster instead\n', err.message);
    end
  end
  lfw_raster_roc(x(:) / hi, y(:), lo / hi, path);  % the raster's axis runs from lo to 1
end
