"""Alignment measured on real faces: detection rates, where the faces sit, landmark precision, time.

    python -m benchmarks.bench_align [--data ../shared/data] [--num-images 500] [--num-precision 100]
                                   [--json bench_align.json]

Sections (each printed as it finishes):

- detection: of ``--num-images`` LFW crops (a fixed random sample), how many the short-range detector alone finds
  with each padding, how many the whole search of :meth:`Aligner.detect` finds, and how many are aligned;
- geometry: where the eyes' midpoint of the original crops sits, the eyes' tilt and the eye-to-mouth distance;
- template: the aligned faces are detected again, and their landmarks compared with the template (eyes'
  midpoint, mouth corners' row, eye angle), for LFW and ORL;
- landmarks: the three landmark sources (mesh eye contours, mesh irises, detector keypoints) on
  ``--num-precision`` crops, each seen under 8 random similarity transforms (rotation +-15 degrees, scale 0.85 to
  1.15, shift +-5 px) and mirrored: how far the aligned face moves between views (output pixels), and how the
  detector's mouth centre compares with the mesh's mouth corners;
- pictures: the 40 ORL people pasted as heads 600 to 48 px high into 800x600 pictures of blurred noise (small
  faces in larger photos, which the tiled search is for);
- time: one :meth:`Aligner.align` call on a 144x144 crop, on an 800x600 picture with a 300 px head, and on a
  faceless 800x600 picture (the whole search runs), in this process.
"""
import argparse
import os
import random
import time

import numpy as np
import cv2

from lightcnn import align, files, warp
from lightcnn.images import Template
from lightcnn.networks import INPUT_SIZE, STORED_SIZE

from benchmarks.paths import SHARED_DATA

DEFAULT_DATA = SHARED_DATA
_O, _C = (STORED_SIZE - INPUT_SIZE) // 2, STORED_SIZE // 2  # where the centre crop starts; the image's centre
_REFERENCE = np.array([[_O, _O], [_O + INPUT_SIZE, _O], [_O, _O + INPUT_SIZE], [_O + INPUT_SIZE, _O + INPUT_SIZE],
                       [_C, _C]], np.float64)  # the centre crop's corners + centre


def lfw_sample(lfw_root, num_images, seed=0):
    """A fixed random sample of LFW crops: ``(relative paths, gray images)``."""
    rels = sorted(f"{d}/{f}" for d in os.listdir(lfw_root) for f in os.listdir(os.path.join(lfw_root, d)))
    rels = sorted(random.Random(seed).sample(rels, min(num_images, len(rels))))
    return rels, [cv2.imread(os.path.join(lfw_root, *r.split("/")), cv2.IMREAD_GRAYSCALE) for r in rels]


def orl_images(orl_root):
    return [cv2.imread(os.path.join(orl_root, f"s{i}", f"{j}.pgm"), cv2.IMREAD_GRAYSCALE)
            for i in range(1, 41) for j in range(1, 11)]


def _pct(values, qs=(10, 50, 90)):
    values = np.asarray(values, np.float64)
    return {f"p{q}": round(float(np.percentile(values, q)), 3) for q in qs} if len(values) else None


def template_errors(result, aligner):
    """Landmarks found again on an aligned face vs the template: ``(eye midpoint distance, mouth row error,
    eye angle in degrees, largest landmark error)``, or None when nothing is found on the aligned image.
    The largest landmark error compares each re-detected point with where the transform put the original one."""
    again = aligner.align(result.image)
    if again.landmarks is None:
        return None
    t = aligner.template
    p = again.landmarks
    eyes, mouth = (p[0] + p[1]) / 2, (p[3] + p[4]) / 2
    angle = np.degrees(np.arctan2(p[1, 1] - p[0, 1], p[1, 0] - p[0, 0]))
    mapped = warp.apply_transform(result.matrix, result.landmarks)
    return (float(np.hypot(*(eyes - t.eye_centre))), float(abs(mouth[1] - t.mouth_y)), float(abs(angle)),
            float(np.max(np.hypot(*(p - mapped).T))))


def bench_detection(images):
    out = {"images": len(images), "short_range_alone": {}, "search": {}, "aligned": {}}
    for pad in (0.0, 0.1, 0.25, 0.5):
        with align.Aligner(pad=pad) as aligner:
            detector = aligner.detector
            short = sum(bool(detector.run_detector(detector.short_range, cv2.cvtColor(im, cv2.COLOR_GRAY2RGB),
                                                   int(round(pad * max(im.shape)))))
                        for im in images)
            found = sum(bool(aligner.detect(im)) for im in images)
            results = [aligner.align(im) for im in images]
        key = f"pad {pad:g}"
        out["short_range_alone"][key] = short
        out["search"][key] = found
        out["aligned"][key] = sum(r.ok for r in results)
        reasons = {}
        for r in results:
            if not r.ok:
                reasons[r.reason.split(" (")[0].split(":")[0]] = reasons.get(r.reason.split(" (")[0].split(":")[0],
                                                                              0) + 1
        out.setdefault("not_aligned_reasons", {})[key] = reasons
        print(f"detection {key}: short-range alone {short}/{len(images)}, whole search {found}, aligned "
              f"{out['aligned'][key]} (not aligned: {reasons or 'none'})", flush=True)
    return out


def bench_geometry(images, aligner):
    eyes, tilt, drop, outside = [], [], [], []
    for im in images:
        r = aligner.align(im)
        if r.landmarks is None:
            continue
        p = r.landmarks
        eyes.append((p[0] + p[1]) / 2)
        tilt.append(np.degrees(np.arctan2(p[1, 1] - p[0, 1], p[1, 0] - p[0, 0])))
        drop.append(((p[3] + p[4]) / 2 - (p[0] + p[1]) / 2)[1])
        if r.outside is not None:
            outside.append(r.outside)
    eyes = np.array(eyes)
    out = {"faces": len(eyes), "eye_midpoint_x": _pct(eyes[:, 0]), "eye_midpoint_y": _pct(eyes[:, 1]),
           "eye_tilt_deg_abs": _pct(np.abs(tilt)), "eye_to_mouth_px": _pct(drop),
           "outline_outside": _pct(outside, (50, 90, 99, 100))}
    print(f"geometry of the original crops ({len(eyes)} faces; p10/p50/p90): eyes' midpoint x {out['eye_midpoint_x']}, "
          f"y {out['eye_midpoint_y']}; |eye tilt| deg {out['eye_tilt_deg_abs']}; eye-to-mouth px "
          f"{out['eye_to_mouth_px']} (template 48); face outline outside {out['outline_outside']}", flush=True)
    return out


def _black_fill(result, shape, crop=INPUT_SIZE):
    """Share of the aligned image, and of its centre ``crop``, that comes from outside the photo (black)."""
    size = result.image.shape[0]
    inside = cv2.warpAffine(np.ones(shape, np.uint8), result.matrix, (size, size), flags=cv2.INTER_NEAREST)
    o = (size - crop) // 2
    return 1.0 - inside.mean(), 1.0 - inside[o:o + crop, o:o + crop].mean()


def bench_template(name, images, aligner):
    errs, fill = [], []
    aligned = 0
    for im in images:
        r = aligner.align(im)
        if r.ok:
            aligned += 1
            fill.append(_black_fill(r, im.shape))
            e = template_errors(r, aligner)
            if e is not None:
                errs.append(e)
    errs = np.array(errs)
    qs = (50, 90, 99, 100)
    out = {"images": len(images), "aligned": aligned, "found_again": len(errs),
           "eye_midpoint_px": _pct(errs[:, 0], qs), "mouth_row_px": _pct(errs[:, 1], qs),
           "eye_angle_deg": _pct(errs[:, 2], qs), "max_landmark_px": _pct(errs[:, 3], qs),
           "black_fill_144": _pct([f[0] for f in fill], (10, 50, 90)),
           "black_fill_128_crop": _pct([f[1] for f in fill], (10, 50, 90))}
    print(f"template {name}: {aligned}/{len(images)} aligned, landmarks found again on {len(errs)}; "
          f"eyes' midpoint off by {out['eye_midpoint_px']} px, mouth row {out['mouth_row_px']} px, eye angle "
          f"{out['eye_angle_deg']} deg, any landmark vs its transformed original {out['max_landmark_px']} px; "
          f"outside the photo (black): {out['black_fill_144']} of the 144 image, {out['black_fill_128_crop']} of "
          f"its 128 centre crop", flush=True)
    return out


def _similarity(rng, shape):
    h, w = shape
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), rng.uniform(-15, 15), rng.uniform(0.85, 1.15))
    m[:, 2] += rng.uniform(-5, 5, size=2)
    return m


def _invert(m):
    return cv2.invertAffineTransform(np.asarray(m, np.float64))


def _movement(matrices):
    """RMS movement (output px) of the 128 crop's corners and centre between transforms of the same face."""
    back = np.array([warp.apply_transform(_invert(m), _REFERENCE) for m in matrices])  # (k, 5, 2) photo px
    mean = back.mean(axis=0)
    moved = np.array([warp.apply_transform(m, mean) - _REFERENCE for m in matrices])
    return float(np.sqrt((moved ** 2).sum(axis=2).mean()))


def bench_landmarks(images, views=8, seed=0):
    out = {}
    rng = np.random.RandomState(seed)
    transforms = [[_similarity(rng, (im.shape[0] + 80, im.shape[1] + 80)) for _ in range(views)] for im in images]
    drops = {}
    for source in align.LANDMARK_SOURCES:
        jitter, mirror, failed = [], [], 0
        drops[source] = []
        with align.Aligner(Template(landmarks=source)) as aligner:
            for im, ts in zip(images, transforms):
                padded = cv2.copyMakeBorder(im, 40, 40, 40, 40, cv2.BORDER_CONSTANT, value=0)
                h, w = padded.shape
                matrices = []
                for t in ts:
                    r = aligner.align(cv2.warpAffine(padded, t, (w, h), flags=cv2.INTER_CUBIC))
                    if r.landmarks is None:
                        failed += 1
                        continue
                    points = warp.apply_transform(_invert(t), r.landmarks)  # back to the padded photo
                    matrices.append(warp.template_transform(points))
                if len(matrices) >= 2:
                    jitter.append(_movement(matrices))
                plain, flipped = aligner.align(padded), aligner.align(np.ascontiguousarray(padded[:, ::-1]))
                if plain.landmarks is None or flipped.landmarks is None:
                    continue
                p = plain.landmarks
                drops[source].append((((p[3] + p[4]) / 2 - (p[0] + p[1]) / 2))[1])
                q = flipped.landmarks.copy()
                q[:, 0] = w - 1 - q[:, 0]  # mirrored back; the subject's right eye of the mirror is the left one
                q = q[[1, 0, 2, 4, 3]]
                mirror.append(_movement([warp.template_transform(p), warp.template_transform(q)]))
        out[source] = {"views_without_landmarks": failed, "movement_px": _pct(jitter, (50, 90)),
                       "mirror_movement_px": _pct(mirror, (50, 90))}
        print(f"landmarks {source}: aligned face moves between views by {out[source]['movement_px']} px "
              f"(p50/p90, output pixels), between image and mirror by {out[source]['mirror_movement_px']} px; "
              f"{failed} views without landmarks", flush=True)
    n = min(len(drops["iris"]), len(drops["detector"]))
    if n:
        ratio = np.array(drops["detector"][:n]) / np.array(drops["iris"][:n])
        out["detector_mouth_centre_vs_mesh_corners"] = _pct(ratio)
        print(f"landmarks: eye-to-mouth drop with the detector's mouth centre / with the mesh's mouth corners: "
              f"{out['detector_mouth_centre_vs_mesh_corners']} (p10/p50/p90; a scale bias of the same size)",
              flush=True)
    return out


def _picture(head, side):
    """An 800x600 blurred-noise picture with ``head`` resized to ``side`` px high in it (None: no head)."""
    rng = np.random.RandomState(0)
    canvas = cv2.GaussianBlur(np.clip(rng.normal(120, 20, (600, 800)), 0, 255).astype(np.uint8), (0, 0), 3)
    if head is not None:
        w = int(round(side * head.shape[1] / head.shape[0]))
        canvas[150:150 + side, 250:250 + w] = cv2.resize(head, (w, side), interpolation=cv2.INTER_CUBIC)
    return canvas


def bench_pictures(heads, aligner, seed=0):
    """ORL heads pasted at several sizes into 800x600 pictures: found in the right place, and aligned."""
    rng = np.random.RandomState(seed)
    out = {}
    for side in (600, 300, 180, 120, 72, 48):
        found = right = aligned = 0
        reasons = {}
        for head in heads:
            w = int(round(side * head.shape[1] / head.shape[0]))
            canvas = cv2.GaussianBlur(np.clip(rng.normal(120, 20, (600, 800)), 0, 255).astype(np.uint8), (0, 0), 3)
            y, x = rng.randint(0, 600 - side + 1), rng.randint(0, 800 - w + 1)
            canvas[y:y + side, x:x + w] = cv2.resize(head, (w, side), interpolation=cv2.INTER_AREA
                                                     if side < head.shape[0] else cv2.INTER_CUBIC)
            r = aligner.align(canvas)
            if r.face is not None:
                found += 1
                cx, cy = (r.face.box[0] + r.face.box[2]) / 2, (r.face.box[1] + r.face.box[3]) / 2
                right += x <= cx <= x + w and y <= cy <= y + side
            aligned += r.ok
            if not r.ok:
                key = r.reason.split(" (")[0].split(":")[0]
                reasons[key] = reasons.get(key, 0) + 1
        out[f"head {side} px"] = {"found": found, "in_the_right_place": right, "aligned": aligned,
                                  "not_aligned": reasons}
        print(f"pictures 800x600, head {side} px high: found {found}/{len(heads)} ({right} in the right place), "
              f"aligned {aligned} (not aligned: {reasons or 'none'})", flush=True)
    return out


def bench_time(lfw, orl_head, aligner, repeats=3):
    cases = {"lfw_144_crop": lfw, "picture_800x600_head_300": [_picture(orl_head, 300)] * 20,
             "picture_800x600_no_face": [_picture(None, 0)] * 5}
    out = {}
    for name, images in cases.items():
        best = None
        for _ in range(repeats):
            start = time.perf_counter()
            for im in images:
                aligner.align(im)
            per = (time.perf_counter() - start) / len(images) * 1000
            best = per if best is None else min(best, per)
        out[name] = round(best, 2)
        print(f"time {name}: {best:.1f} ms per image (best of {repeats}, one process)", flush=True)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_align", description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=DEFAULT_DATA, help="folder holding lfw_gray144/ and orl_faces/")
    parser.add_argument("--num-images", type=int, default=500, help="LFW crops for detection and geometry")
    parser.add_argument("--num-precision", type=int, default=100, help="LFW crops for the landmark comparison")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    rels, lfw = lfw_sample(os.path.join(args.data, "lfw_gray144"), args.num_images)
    orl = orl_images(os.path.join(args.data, "orl_faces"))
    results = {"lfw_sample": len(rels), "detection": bench_detection(lfw)}
    with align.Aligner() as aligner:
        results["geometry_lfw"] = bench_geometry(lfw, aligner)
        results["geometry_orl"] = bench_geometry(orl, aligner)
    with align.Aligner(Template(landmarks="detector")) as aligner:
        print("(the same with the detector's keypoints)")
        results["geometry_lfw_detector_keypoints"] = bench_geometry(lfw, aligner)
    with align.Aligner() as aligner:
        results["template_lfw"] = bench_template("LFW", lfw, aligner)
        results["template_orl"] = bench_template("ORL", orl, aligner)
        results["pictures"] = bench_pictures(orl[::10], aligner)
        results["time_ms"] = bench_time(lfw[:100], orl[0], aligner)
    results["landmarks"] = bench_landmarks(lfw[:args.num_precision])
    if args.json:
        files.write_json(args.json, results, indent=2)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
