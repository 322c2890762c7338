"""``python -m lightcnn export``: a checkpoint -> an ONNX model of the face embedding
(:mod:`lightcnn.interop.export`)."""
import argparse

from lightcnn import cli
from lightcnn.interop import export


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m lightcnn export", description=export.__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model-prefix", required=True, help="checkpoint prefix (prefix-NNNN.params + .json)")
    parser.add_argument("--epoch", type=int, default=None, help="checkpoint epoch (None: the last one saved)")
    parser.add_argument("--onnx", required=True, help="the .onnx file to write")
    parser.add_argument("--with-logits", action="store_true",
                        help="also output the classifier's logits (second output); default: the embedding only")
    cli.add_debug_flag(parser)
    return parser


def _shape(value_info):
    return "(" + ", ".join(d.dim_param or str(d.dim_value) for d in value_info.type.tensor_type.shape.dim) + ")"


def _export(argv):
    args = build_parser().parse_args(argv)
    model = export.export_onnx(args.model_prefix, args.onnx, args.epoch, args.with_logits)
    inputs = ", ".join(f"{i.name} {_shape(i)}" for i in model.graph.input)
    outputs = ", ".join(f"{o.name} {_shape(o)}" for o in model.graph.output)
    print(f"wrote {args.onnx}: opset {export.ONNX_OPSET}, input {inputs}, outputs {outputs}")
    return 0


def main(argv=None):
    """The exporter's command line; returns the exit status (2: bad input, or onnx missing)."""
    return cli.run(_export, argv)


if __name__ == "__main__":
    raise SystemExit(main())
