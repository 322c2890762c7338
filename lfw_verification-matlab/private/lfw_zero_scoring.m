function text = lfw_zero_scoring(pca_dim)
%LFW_ZERO_SCORING  What becomes of the pairs of a zero row that are kept (lightcnn/protocols/tenfold.py's _zero_scoring).
  if pca_dim > 0
    text = 'scored after PCA';
  else
    text = 'scored as cosine 0';
  end
end
