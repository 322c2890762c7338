"""A deterministic synthetic face dataset: the built-in data of ``python -m benchmarks.demo``.

    python -m benchmarks.synthetic_faces --out FACES [--train-identities 100] [--verify-identities 40]
        [--images-per-identity 8] [--pairs-per-fold 30] [--seed 0] [--difficulty 1.0]

writes LFW-style ``FACES/<Name>/<Name>_NNNN.jpg`` (gray 144x144, numbered from 1), a ``pairs.txt`` in the official
View 2 format (10 folds of n matched then n mismatched pairs) beside them, and ``manifest.json`` (the options, the
training and verification identities, the file counts).

Why synthetic faces, and what makes them hard
-----------------------------------------------
The demo must show, in minutes on a CPU, that training makes LightCNN's 256-d feature better for verification of
*unseen* people. So identity lives in the geometry and markings of a face, and everything that the photographs
of one person differ in is varied per image, strongly enough that raw pixels (and an untrained network, which is
little more than a random projection of them) confuse people:

- identity (drawn once from ``(seed, identity)``): head width, height and jaw squareness; skin tone and a fixed
  low-frequency skin texture; ears; hair tone, volume, hairline height, curvature and parting (or bald); eye
  spacing, height, size, tilt and iris tone; brow gap, length, thickness, angle and arch; nose length, width and
  nostrils; mouth position, width and lip thickness; moles; sometimes a beard, a moustache or glasses;
- per image (drawn from ``(seed, identity, image)``): roll, translation and scale; a yaw/pitch-like shift of the
  inner features against the head outline; expression (mouth opening, smile or frown, brow raise, eyes half or
  fully closed); illumination (a directional gradient of random direction and strength, ambient level, gamma,
  contrast); the background (level and texture); blur and sensor noise; JPEG.

``difficulty`` scales every per-image variation (0 gives one frontal neutral image per identity repeated with
faint noise only). The default, 1.0, was set by measurement (README, "Demo"): hard enough that raw pixels and the
untrained network stay near chance on the demo's pairs, easy enough that 8 epochs on a CPU clearly beat both.

Training identities and verification identities are disjoint: identities ``0 .. T-1`` are for training,
``T .. T+V-1`` only appear in ``pairs.txt``. The pair folds are disjoint in identities too, as LFW's View 2 folds
are: the verification identities are dealt round-robin to the 10 folds, a fold's matched pairs are two images of
one of its identities, its mismatched pairs two images of two of its identities, all drawn without repetition.

Everything is numpy + OpenCV, seeded explicitly: the same options give the same bytes on the same machine (the
tests check this). The faces are drawn by :mod:`benchmarks.face_drawing`; this module makes the dataset of them.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time

import cv2
import numpy as np

from lightcnn import files
from lightcnn.protocols import lfw_pairs as lfw
from benchmarks.face_drawing import IMAGE_SIZE as IMAGE_SIZE, identity_params, image_params, render

N_FOLDS = 10
GENERATOR_VERSION = 1  # bump when the drawing (benchmarks.face_drawing) changes, so a kept dataset is never a stale one
MANIFEST = "manifest.json"
PAIRS_FILE = "pairs.txt"
NAME_PREFIX = "Synth"


def identity_name(index):
    """The folder name of identity ``index``: ``Synth_0001`` (LFW-style, so keys are ``Name/Name_NNNN.jpg``)."""
    return "%s_%04d" % (NAME_PREFIX, index + 1)


# ----------------------------------------------------------------------------------------------------------------
# Pairs

def make_pairs(names, images_per_identity, pairs_per_fold, seed, n_folds=N_FOLDS):
    """View-2-style pairs over the verification identities ``names``: fold-disjoint identities, no repeats.

    Returns a list of :class:`lightcnn.protocols.lfw_pairs.Pair` in block order (fold 0's matched then mismatched
    pairs, ...).
    """
    if len(names) < 2 * n_folds:
        raise ValueError(f"{len(names)} verification identities: at least {2 * n_folds} are needed "
                         f"({n_folds} folds, two identities each for mismatched pairs)")
    if images_per_identity < 2:
        raise ValueError("matched pairs need at least 2 images per identity")
    r = np.random.default_rng([seed, 7])
    pairs = []
    for fold in range(n_folds):
        group = names[fold::n_folds]
        same = [(n, i, j) for n in group for i in range(1, images_per_identity + 1)
                for j in range(i + 1, images_per_identity + 1)]
        diff = [(a, i, b, j) for ai, a in enumerate(group) for b in group[ai + 1:]
                for i in range(1, images_per_identity + 1) for j in range(1, images_per_identity + 1)]
        if len(same) < pairs_per_fold or len(diff) < pairs_per_fold:
            raise ValueError(f"fold {fold + 1} has {len(same)} matched and {len(diff)} mismatched candidate pairs, "
                             f"fewer than --pairs-per-fold {pairs_per_fold}: use more verification identities "
                             f"or images")
        for k in sorted(r.choice(len(same), pairs_per_fold, replace=False)):
            n, i, j = same[k]
            pairs.append(lfw.Pair(lfw.lfw_key(n, i), lfw.lfw_key(n, j), True, fold))
        for k in sorted(r.choice(len(diff), pairs_per_fold, replace=False)):
            a, i, b, j = diff[k]
            pairs.append(lfw.Pair(lfw.lfw_key(a, i), lfw.lfw_key(b, j), False, fold))
    return pairs


# ----------------------------------------------------------------------------------------------------------------
# The dataset

@dataclasses.dataclass(frozen=True)
class Options:
    """What to generate. The defaults are the demo's dataset: 140 people, 1,120 images, 600 pairs."""

    train_identities: int = 100
    verify_identities: int = 40
    images_per_identity: int = 8
    pairs_per_fold: int = 30
    seed: int = 0
    difficulty: float = 1.0
    quality: int = 92

    def check(self):
        if self.train_identities < 1:
            raise ValueError("at least one training identity is needed")
        if not 1 <= self.quality <= 100:
            raise ValueError(f"JPEG quality must be in [1, 100], got {self.quality}")
        if self.difficulty < 0:
            raise ValueError(f"difficulty must be >= 0, got {self.difficulty}")


def generate(out, options=Options(), force=False, log=None):
    """Write the dataset into ``out``: ``<Name>/<Name>_NNNN.jpg``, ``pairs.txt``, ``manifest.json``.

    An existing complete dataset made with the same options (and generator version) is kept as it is and its
    manifest returned at once; one made with other options is an error unless ``force`` (then it is replaced:
    identity folders of this dataset are rewritten, leftovers of a larger one are removed).
    Returns the manifest dict.
    """
    options.check()
    out = os.fspath(out)
    manifest_path = os.path.join(out, MANIFEST)
    wanted = dict(dataclasses.asdict(options), generator_version=GENERATOR_VERSION)
    if os.path.exists(manifest_path):
        with open(manifest_path, encoding="utf-8") as f:
            existing = json.load(f)
        if existing.get("options") == wanted:
            if log:
                log(f"[synthetic] {out} already holds this dataset (same options): kept")
            return existing
        if not force:
            raise FileExistsError(f"{out} holds a synthetic dataset made with other options "
                                  f"({existing.get('options')}); pass force=True / --force to replace it")
    started = time.time()
    total = options.train_identities + options.verify_identities
    names = [identity_name(i) for i in range(total)]
    # pairs first: a bad combination of counts fails before any image is written
    verify_names = names[options.train_identities:]
    pairs = make_pairs(verify_names, options.images_per_identity, options.pairs_per_fold, options.seed)
    os.makedirs(out, exist_ok=True)
    if os.path.exists(manifest_path):
        os.remove(manifest_path)  # the manifest marks a complete dataset: gone until this one is
    for entry in os.listdir(out):
        if entry.startswith(NAME_PREFIX + "_") and entry not in names and os.path.isdir(os.path.join(out, entry)):
            shutil.rmtree(os.path.join(out, entry))  # an identity of an earlier, larger synthetic set
    params = [cv2.IMWRITE_JPEG_QUALITY, int(options.quality)]
    for index, name in enumerate(names):
        folder = os.path.join(out, name)
        shutil.rmtree(folder, ignore_errors=True)  # no image of an earlier set may survive among the new ones
        os.makedirs(folder)
        face = identity_params(options.seed, index)
        for image in range(options.images_per_identity):
            img = render(face, image_params(options.seed, index, image, options.difficulty))
            ok, buf = cv2.imencode(".jpg", img, params)
            if not ok:
                raise RuntimeError("JPEG encoding failed")
            with open(os.path.join(folder, "%s_%04d.jpg" % (name, image + 1)), "wb") as f:
                f.write(buf.tobytes())
        if log and (index + 1) % 20 == 0:
            log(f"[synthetic] {index + 1}/{total} identities")
    lfw.write_pairs_txt(pairs, os.path.join(out, PAIRS_FILE))
    manifest = {
        "options": wanted,
        "train_identities": names[:options.train_identities],
        "verify_identities": verify_names,
        "num_images": total * options.images_per_identity,
        "num_pairs": len(pairs),
        "pairs": PAIRS_FILE,
        "seconds": round(time.time() - started, 2),
    }
    files.write_json(manifest_path, manifest)
    if log:
        log(f"[synthetic] {manifest['num_images']} images of {total} identities "
            f"({options.train_identities} for training, {options.verify_identities} for verification), "
            f"{len(pairs)} pairs in {N_FOLDS} folds -> {out} ({manifest['seconds']} s)")
    return manifest


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m benchmarks.synthetic_faces",
                                     description="Generate the demo's synthetic faces and their pairs.txt.")
    parser.add_argument("--out", required=True, help="output folder (identity folders, pairs.txt, manifest.json)")
    d = Options()
    parser.add_argument("--train-identities", type=int, default=d.train_identities)
    parser.add_argument("--verify-identities", type=int, default=d.verify_identities,
                        help=f"held-out identities for pairs.txt (at least {2 * N_FOLDS})")
    parser.add_argument("--images-per-identity", type=int, default=d.images_per_identity)
    parser.add_argument("--pairs-per-fold", type=int, default=d.pairs_per_fold,
                        help="matched (and as many mismatched) pairs per fold")
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--difficulty", type=float, default=d.difficulty, help="scale of the per-image variation")
    parser.add_argument("--quality", type=int, default=d.quality, help="JPEG quality")
    parser.add_argument("--force", action="store_true", help="replace a dataset made with other options")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    options = Options(args.train_identities, args.verify_identities, args.images_per_identity, args.pairs_per_fold,
                      args.seed, args.difficulty, args.quality)
    try:
        generate(args.out, options, force=args.force, log=print)
    except (ValueError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
