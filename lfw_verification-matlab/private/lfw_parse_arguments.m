function [features_file, pairs_file, out_dir, pca_dim, exclude_missing, exclude_zero_rows] = lfw_parse_arguments(args)
%LFW_PARSE_ARGUMENTS  Arguments of lfw_eval: up to 3 positional ('' keeps a default), then name/value options.
  positional = {'LFW_features.mat', '', '.'};
  n_positional = 0;
  pca_dim = 0;
  exclude_missing = false;
  exclude_zero_rows = false;
  i = 1;
  while i <= numel(args)
    a = args{i};
    if ischar(a) && any(strcmpi(a, {'pca', 'exclude_missing', 'exclude_zero_rows'}))
      if i == numel(args)
        error('lfw_eval:usage', 'option ''%s'' needs a value', a);
      end
      value = args{i + 1};
      if ischar(value)
        if any(strcmpi(value, {'true', 'false'}))
          value = strcmpi(value, 'true');
        else
          value = str2double(value);
        end
      end
      if strcmpi(a, 'pca')
        if ~isscalar(value) || ~isnumeric(value) || value < 0 || value ~= round(value)
          error('lfw_eval:usage', '''pca'' needs a non-negative whole number of dimensions');
        end
        pca_dim = double(value);
      elseif strcmpi(a, 'exclude_missing')
        exclude_missing = logical(value);
      else
        exclude_zero_rows = logical(value);
      end
      i = i + 2;
    else
      n_positional = n_positional + 1;
      if n_positional > 3 || ~ischar(a)
        error('lfw_eval:usage', ['usage: lfw_eval(features_file, pairs_file, out_dir, ''pca'', DIM, ' ...
              '''exclude_missing'', true, ''exclude_zero_rows'', true)']);
      end
      if ~isempty(a)
        positional{n_positional} = a;
      end
      i = i + 1;
    end
  end
  features_file = positional{1};
  pairs_file = positional{2};
  out_dir = positional{3};
end
