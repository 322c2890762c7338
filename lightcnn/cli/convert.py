"""``python -m lightcnn convert``: the authors' PyTorch weights -> a checkpoint of this project
(:mod:`lightcnn.interop.convert`)."""
import argparse
import logging

from lightcnn import checkpoint, cli
from lightcnn.images import Preprocess
from lightcnn.interop import convert
from lightcnn.networks import INPUT_SIZE, STORED_SIZE

log = logging.getLogger("lightcnn.convert")


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m lightcnn convert", description=convert.__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--pytorch", required=True, help="the authors' .pth.tar (or a bare state_dict file)")
    parser.add_argument("--out", required=True, help="checkpoint prefix to write, e.g. models/lightcnn29v2")
    parser.add_argument("--network", choices=convert.NETWORKS, default=None, help="override the detected network")
    parser.add_argument("--image-size", type=int, default=convert.AUTHORS_PREPROCESS.image_size,
                        help=f"side images are resized to before the {INPUT_SIZE} centre crop: {STORED_SIZE} for "
                             f"{STORED_SIZE}x{STORED_SIZE} training-aligned faces, {INPUT_SIZE} for the authors' "
                             f"{INPUT_SIZE}x{INPUT_SIZE} test crops")
    cli.add_debug_flag(parser)
    return parser


def _convert(argv):
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=cli.LOG_FORMAT)
    authors = convert.AUTHORS_PREPROCESS
    preprocess = Preprocess(image_size=args.image_size, crop_size=authors.crop_size, scale=authors.scale,
                            mean=authors.mean)
    net, source = convert.load_pytorch_checkpoint(args.pytorch, args.network)
    convert.write_checkpoint(net, source, args.out, preprocess)
    log.info("%s: %s%s, %d classes, sha256 %s", source["file"], source["network"],
             "" if args.network else " (detected)", source["num_classes"], source["sha256"])
    epoch = convert.CONVERTED_EPOCH
    log.info("wrote %s, %s and %s; preprocessing %s", checkpoint.symbol_path(args.out),
             checkpoint.params_path(args.out, epoch), checkpoint.sidecar_path(args.out, epoch), preprocess.to_dict())
    return 0


def main(argv=None):
    """The converter's command line; returns the exit status (2: bad input, or torch missing)."""
    return cli.run(_convert, argv)


if __name__ == "__main__":
    raise SystemExit(main())
