"""``python -m lightcnn COMMAND [flags]``: every command of the project under one name.

Each command is also its own module (``python -m lightcnn.cli.prepare``, ...); this only finds it, so ``--help`` and the
errors are the command's own.
"""
import importlib
import sys

# command -> the module whose main(argv) runs it
COMMANDS = {
    "prepare": "lightcnn.cli.prepare",
    "train": "lightcnn.cli.train",
    "extract": "lightcnn.cli.extract",
    "evaluate": "lightcnn.cli.evaluate",
    "blufr": "lightcnn.cli.blufr",
    "align": "lightcnn.cli.align",
    "verify-pair": "lightcnn.cli.verify_pair",
    "convert": "lightcnn.cli.convert",
    "export": "lightcnn.cli.export",
    "launch": "lightcnn.cli.launch",
}


def usage():
    width = max(map(len, COMMANDS))
    lines = [f"    {name:<{width}}  python -m {module}" for name, module in COMMANDS.items()]
    return "usage: python -m lightcnn COMMAND [flags]   (COMMAND --help for its flags)\ncommands:\n" + "\n".join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}\n{usage()}", file=sys.stderr)
        return 2
    return importlib.import_module(COMMANDS[name]).main(rest)


if __name__ == "__main__":
    sys.exit(main())
