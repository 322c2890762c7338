"""What a folder of faces is, and what a face is: the rules every command that reads faces follows.

The folder rules (:func:`scan_root`): ``ROOT/<identity>/<image>``, one folder per identity; an image is a file whose
name ends like one (:data:`IMAGE_EXTENSIONS`) and does not start with a dot. The dataset builder
(``lightcnn.prepare``) and the aligner (``lightcnn.align_folder``) both list a root with it, so a tree aligned by one
is packed by the other file for file, and anything they leave out is listed with the reason.

The face policy: an image smaller than :data:`MIN_FACE_SIZE` on its short side is no face (:func:`too_small`); the
builder skips it with the reason, the extractor and ``verify-pair`` refuse it (:func:`check_face_size`).

This module imports neither OpenCV, MXNet nor MediaPipe.
"""
import errno
import os
import stat

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".pgm", ".bmp")
# The smallest image taken as a face, on its short side. A thumbnail, an icon or a 1x1 placeholder holds too few
# pixels to tell one person from another, yet enlarged to 144x144 (a flat gray square, for 1x1) it would get a
# feature like any face and be packed, extracted or compared without a word. 32 px is a quarter of the network's
# 128 px input: a smaller face would be enlarged more than four times.
MIN_FACE_SIZE = 32


class FolderError(ValueError):
    """A root folder that cannot be listed; the commands print it in one line and exit with status 2."""


class ImageTooSmallError(ValueError):
    """An image smaller than :data:`MIN_FACE_SIZE` on its short side; ``reason`` is the message without the name."""

    def __init__(self, name, reason):
        super().__init__(f"{name}: {reason}")
        self.reason = reason


def is_image_file(name):
    return name.lower().endswith(IMAGE_EXTENSIONS) and not os.path.basename(name).startswith(".")


def too_small(img):
    """Why a decoded image is too small to be a face (:data:`MIN_FACE_SIZE`), or None."""
    h, w = img.shape[:2]
    if min(h, w) < MIN_FACE_SIZE:
        return f"too small to be a face: {w}x{h} px (the short side must be at least {MIN_FACE_SIZE} px)"
    return None


def check_face_size(img, name):
    """``img``, or :class:`ImageTooSmallError` naming ``name`` and its size."""
    reason = too_small(img)
    if reason:
        raise ImageTooSmallError(name, reason)
    return img


# ----------------------------------------------------------------------------------------------------------------
# The folder rules

def _kind(path):
    """``("dir" | "file" | "other", None)`` for what ``path`` is after following links, or ``(None, reason)`` when
    it cannot be told (a link loop, a broken link, no permission)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        if error.errno == errno.ELOOP:
            return None, "symbolic link loop"
        if error.errno == errno.ENOENT and os.path.islink(path):
            return None, "broken symbolic link"
        return None, f"cannot inspect: {error.strerror or error}"
    if stat.S_ISDIR(mode):
        return "dir", None
    if stat.S_ISREG(mode):
        return "file", None
    return "other", "not a regular file (a pipe, socket or device)"


def _bad_name(name):
    """Why a file or folder name cannot go into a list file, or None."""
    if any(c in name for c in "\t\r\n"):
        return "tab or line break in the name"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "name is not valid UTF-8"
    return None


def _printable(name):
    """A name for messages and summary.json even when it is not valid UTF-8."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")  # b"bad\xff.png" -> "bad\\xff.png"


def scan_root(root, exclude=None):
    """List ``root``'s identity folders and their candidate image files (by extension).

    Returns ``(identities, empty_folders, non_image_files, ignored)``: ``identities`` maps a folder name to its
    sorted image file names; ``empty_folders`` are identity folders without any image file; ``non_image_files``
    are files in identity folders whose extension is not an image's; ``ignored`` lists other entries (files
    directly under ``root``, sub-folders of identity folders, hidden folders, the output folder, link loops, broken
    links, pipes and devices, names that are not UTF-8, a second link to an identity folder already listed) with a
    reason. Identity folders and images reached through symbolic links are used like any other.
    """
    exclude = os.path.realpath(exclude) if exclude else None
    identities, empty, non_image, ignored = {}, [], [], []
    seen = {}  # real path of an identity folder -> its name (two names for one folder would be two labels)

    def ignore(path, reason):
        ignored.append({"path": _printable(path), "reason": reason})

    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as error:
        raise FolderError(f"cannot list the root folder {root}: {error.strerror or error}") from None
    for entry in entries:
        kind, problem = _kind(entry.path)
        if problem and kind is None:
            ignore(entry.name, problem)
            continue
        if kind != "dir":
            ignore(entry.name, "file outside any identity folder")
            continue
        real = os.path.realpath(entry.path)
        if exclude and real == exclude:
            ignore(entry.name, "the output folder")
            continue
        if entry.name.startswith("."):
            ignore(entry.name, "hidden folder")
            continue
        problem = _bad_name(entry.name)
        if problem:
            ignore(entry.name, problem)
            continue
        if real in seen:
            ignore(entry.name, f"the same folder as identity {seen[real]} (a symbolic link to it)")
            continue
        seen[real] = entry.name
        try:
            subs = sorted(os.scandir(entry.path), key=lambda e: e.name)
        except OSError as error:
            ignore(entry.name, f"cannot list the identity folder: {error.strerror or error}")
            continue
        images = []
        for sub in subs:
            rel = f"{entry.name}/{sub.name}"
            kind, problem = _kind(sub.path)
            if kind == "dir":
                ignore(rel, "sub-folder inside an identity folder (not searched)")
            elif not is_image_file(sub.name):
                if kind is None:
                    ignore(rel, problem)
                else:
                    non_image.append(_printable(rel))
            elif problem or _bad_name(sub.name):
                ignore(rel, problem or _bad_name(sub.name))
            else:
                images.append(sub.name)
        if images:
            identities[entry.name] = images
        else:
            empty.append(entry.name)
    return identities, empty, non_image, ignored
