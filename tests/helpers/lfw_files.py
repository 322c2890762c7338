"""Writers of LFW-style files that only the tests need (the library reads these formats; it never writes them)."""
import os

from lightcnn.faces import is_image_file


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


def write_v73_mat(path):
    """The start of a MATLAB ``-v7.3`` .mat as MATLAB writes it: a 128-byte text header whose version field is
    0x0200 ('IM': little-endian), then HDF5 from byte 512 (its superblock signature; readers stop at the header)."""
    text = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Dec  1 12:00:00 2026 HDF5 schema 1.00 ."
    header = text.ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02IM"
    with open(path, "wb") as f:
        f.write(header.ljust(512, b"\x00") + b"\x89HDF\r\n\x1a\n" + b"\x00" * 1024)
