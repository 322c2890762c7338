function g = blufr_grids()
%BLUFR_GRIDS  The FAR grids, the ranks and where the reported points sit (as lightcnn/protocols/blufr.py).
%   Verification: 0, 1..9 x 10^-8, ..., 1..9 x 10^-1, 1; open set: 0, 1..9 x 10^-4, ..., 1..9 x 10^-1, 1; each
%   point k * 10^e. Ranks 1..10, 20..100. Reported: VR at FAR 1e-3, DIR at rank 1 and FAR 1e-2.
  g.vr_fars = far_grid(-8, -1);
  g.open_fars = far_grid(-4, -1);
  g.ranks = [1:10, 20:10:100];
  [~, g.vr_at] = min(abs(g.vr_fars - 1e-3));
  [~, g.dir_at] = min(abs(g.open_fars - 1e-2));
  g.rank_at = find(g.ranks == 1);
end

function fars = far_grid(first, last)
  fars = 0;
  for e = first:last
    fars = [fars, (1:9) * 10 ^ e]; %#ok<AGROW>
  end
  fars = [fars, 1];
end
