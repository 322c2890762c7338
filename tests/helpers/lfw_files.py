"""Writers of LFW-style files that only the tests need (the library reads these formats; it never writes them)."""
import os

from lightcnn.images import is_image_file


def write_pair_label(pairs, path):
    """The original evaluator's ``pair.label``: ``<1|0> key1 key2`` per line."""
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for p in pairs:
            f.write("%d %s %s\n" % (int(p.is_same), p.key1, p.key2))


def write_image_list(root, path):
    """Every image of an LFW-style tree ``<root>/<Name>/<file>``, sorted, one ``Name/file`` per line; returns the
    keys."""
    keys = sorted(f"{name}/{file}" for name in os.listdir(root) if os.path.isdir(os.path.join(root, name))
                  for file in os.listdir(os.path.join(root, name))
                  if is_image_file(file) and os.path.isfile(os.path.join(root, name, file)))
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.writelines(k + "\n" for k in keys)
    return keys
