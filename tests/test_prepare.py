"""The dataset builder: real ORL faces packed to train/val RecordIO, and every kind of bad input."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import cv2
import mxnet as mx

from lightcnn import data, dataset_summary, images, packing, prepare
from lightcnn.cli import prepare as prepare_cli
from lightcnn.prepare import PrepareError, prepare_dataset


def write_image(path, img, ext=None):
    path = str(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    ok, buf = cv2.imencode(ext or os.path.splitext(path)[1], img)
    assert ok
    with open(path, "wb") as f:
        f.write(buf.tobytes())


def noise(h, w, seed, channels=None):
    shape = (h, w) if channels is None else (h, w, channels)
    return np.random.RandomState(seed).randint(0, 256, size=shape).astype(np.uint8)


def read_lst(path):
    rows = []
    with open(path) as f:
        for line in f:
            idx, label, rel = line.rstrip("\n").split("\t")
            rows.append((int(idx), float(label), rel))
    return rows


def read_records(rec_path):
    """[(id, label, decoded image)] in .idx order."""
    reader = mx.recordio.MXIndexedRecordIO(data.idx_path_of(rec_path), rec_path, "r")
    out = []
    for key, _ in data.read_index(data.idx_path_of(rec_path)):
        header, payload = mx.recordio.unpack(reader.read_idx(key))
        assert header.id == key
        out.append((key, header.label, cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_UNCHANGED)))
    reader.close()
    return out


# ---------------------------------------------------------------------------------------------------------------
# Real faces no one here made: ORL, 40 people x 10 PGM of 92x112

@pytest.fixture(scope="module")
def orl(shared_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("orl")
    summary = prepare_dataset(shared_data / "orl_faces", out, val_fraction=0.2, seed=1, verbose=False)
    return shared_data / "orl_faces", out, summary


def test_orl_lists_classes_and_records(orl):
    root, out, summary = orl
    classes = (out / "classes.txt").read_text().splitlines()
    assert classes == sorted(f"s{i}" for i in range(1, 41))
    train, val = read_lst(out / "train.lst"), read_lst(out / "val.lst")
    assert (len(train), len(val)) == (320, 80)  # 8 + 2 of every identity's 10
    for rows in (train, val):
        per_label = np.bincount([int(label) for _, label, _ in rows], minlength=40)
        assert per_label.tolist() == [len(rows) // 40] * 40
        for _, label, rel in rows:
            assert rel.split("/")[0] == classes[int(label)] and (root / rel).is_file()
    ids = [i for i, _, _ in train + val]
    assert sorted(ids) == list(range(400))  # unique over both splits
    assert len({rel for _, _, rel in train + val}) == 400
    for split, rows in (("train", train), ("val", val)):
        records = read_records(str(out / f"{split}.rec"))
        assert [(i, label) for i, label, _ in records] == [(i, label) for i, label, _ in rows]
        assert all(img.shape == (144, 144) and img.dtype == np.uint8 for _, _, img in records)
    js = json.loads((out / "summary.json").read_text())
    assert js == json.loads(json.dumps(summary))
    assert (js["num_classes"], js["num_images"], js["train"]["images"], js["val"]["images"]) == (40, 400, 320, 80)
    assert js["skipped"] == [] and js["resized"] == 400 and js["converted_colour_to_gray"] == 0
    assert {"path": "README", "reason": "file outside any identity folder"} in js["ignored"]
    assert not any(name.endswith(".tmp") for name in os.listdir(out))


def test_orl_batch_reads_back(orl):
    _, out, _ = orl
    rec = str(out / "train.rec")
    assert data.check_record_file(rec)["num_records"] == 320
    assert data.check_num_classes(None, rec) == 40
    batch = data.train_iter(rec, 32, seed=0).next()
    x, y = batch.data[0].asnumpy(), batch.label[0].asnumpy()
    assert x.shape == (32, 1, 128, 128) and x.dtype == np.float32 and y.shape == (32,)
    assert 0.0 <= x.min() and x.max() <= 1.0 and x.std() > 0.05
    assert np.all((0 <= y) & (y < 40)) and np.all(y == np.round(y))


def test_orl_split_is_deterministic(orl, tmp_path):
    root, out, _ = orl
    prepare_dataset(root, tmp_path / "same", val_fraction=0.2, seed=1, verbose=False)
    prepare_dataset(root, tmp_path / "other", val_fraction=0.2, seed=2, verbose=False)
    for name in ("train.lst", "val.lst", "classes.txt", "train.idx"):
        assert (tmp_path / "same" / name).read_bytes() == (out / name).read_bytes()
    assert (tmp_path / "same" / "train.rec").read_bytes() == (out / "train.rec").read_bytes()
    val = {rel for _, _, rel in read_lst(out / "val.lst")}
    assert val != {rel for _, _, rel in read_lst(tmp_path / "other" / "val.lst")}


# ---------------------------------------------------------------------------------------------------------------
# Generated trees: bad input is reported, converted or refused, never silently dropped

@pytest.fixture
def messy_root(tmp_path):
    root = tmp_path / "faces"
    for i in range(4):
        write_image(root / "alice" / f"good{i}.png", noise(144, 144, i))
    (root / "alice" / "corrupt.jpg").write_bytes(np.random.RandomState(9).bytes(2000))
    (root / "alice" / "empty.jpg").write_bytes(b"")
    ok, buf = cv2.imencode(".png", noise(144, 144, 10))
    (root / "alice" / "truncated.png").write_bytes(buf.tobytes()[: len(buf) // 2])
    write_image(root / "alice" / "colour.jpg", noise(160, 200, 11, channels=3))
    write_image(root / "alice" / "deep.png", noise(144, 144, 12).astype(np.uint16) * 257)  # 16-bit gray
    (root / "alice" / "notes.txt").write_text("not a face")
    (root / "alice" / "nested").mkdir()
    for i in range(3):
        write_image(root / "bob" / f"{i}.pgm", noise(120, 100, 20 + i))  # wrong size and not square
    write_image(root / "bob" / "big.bmp", noise(300, 300, 30))
    (root / "carol").mkdir()
    (root / "dave").mkdir()
    (root / "dave" / "readme.txt").write_text("no faces here")
    (root / "stray.jpg").write_bytes(b"")
    return root


def test_bad_files_are_reported_not_packed(messy_root, tmp_path, capsys):
    out = tmp_path / "out"
    summary = prepare_dataset(messy_root, out, val_fraction=0.0, num_threads=2)
    prepare_cli.print_summary(summary)
    skipped = {s["path"]: s["reason"] for s in summary["skipped"]}
    assert set(skipped) == {"alice/corrupt.jpg", "alice/empty.jpg", "alice/truncated.png"}
    assert skipped["alice/empty.jpg"] == "empty file (0 bytes)"
    assert "cannot decode" in skipped["alice/corrupt.jpg"] and "cannot decode" in skipped["alice/truncated.png"]
    assert summary["empty_identity_folders"] == ["carol", "dave"]
    assert summary["non_image_files"] == ["alice/notes.txt", "dave/readme.txt"]
    ignored = {s["path"] for s in summary["ignored"]}
    assert ignored == {"alice/nested", "stray.jpg"}
    assert summary["converted_colour_to_gray"] == 1
    assert summary["resized"] == 5 and summary["enlarged"] == 3  # colour 200x160, bob's 3 small + 1 big
    assert (summary["num_classes"], summary["train"]["images"], summary["val"]["images"]) == (2, 10, 0)

    listed = {rel for _, _, rel in read_lst(out / "train.lst")}
    assert not listed & set(skipped) and "alice/colour.jpg" in listed and "bob/big.bmp" in listed
    assert all(img.shape == (144, 144) for _, _, img in read_records(str(out / "train.rec")))
    assert read_lst(out / "val.lst") == [] and data.read_index(str(out / "val.idx")) == []
    printed = capsys.readouterr().out
    for path in list(skipped) + ["carol", "dave/readme.txt"]:
        assert path in printed


def test_colour_and_size_conversion_is_the_extractors(messy_root, tmp_path):
    out = tmp_path / "out"
    prepare_dataset(messy_root, out, val_fraction=0.0, verbose=False)
    rows = {rel: i for i, _, rel in read_lst(out / "train.lst")}
    records = {i: img for i, _, img in read_records(str(out / "train.rec"))}
    deep = records[rows["alice/deep.png"]]
    assert np.abs(deep.astype(int) - noise(144, 144, 12)).mean() < 2.0
    for rel in ("alice/colour.jpg", "bob/0.pgm"):
        raw = (messy_root / rel).read_bytes()
        gray, _ = images.decode_gray(raw)
        expected = images.resize_square(gray, 144)
        stored = records[rows[rel]]
        assert np.abs(stored.astype(int) - expected).mean() < 2.0  # only the JPEG q95 loss
        assert images.load_eval_image(raw).shape == (1, 128, 128)


def test_one_image_identity_stays_in_train(tmp_path):
    root = tmp_path / "faces"
    write_image(root / "solo" / "a.png", noise(144, 144, 1))
    for i in range(4):
        write_image(root / "pair" / f"{i}.png", noise(144, 144, 2 + i))
    summary = prepare_dataset(root, tmp_path / "out", val_fraction=0.5, verbose=False)
    assert (summary["train"]["images"], summary["val"]["images"]) == (3, 2)
    assert summary["val"]["identities"] == 1 and summary["train"]["identities"] == 2
    assert prepare.split_identity(["x"], 0.9, 0, "solo") == (["x"], [])
    train, val = prepare.split_identity([f"{i}" for i in range(10)], 0.2, 5, "n")
    assert (len(train), len(val)) == (8, 2) and sorted(train + val) == [f"{i}" for i in range(10)]


@pytest.fixture
def ranked_root(tmp_path):
    """d: 5 images; z: 4 files of which 2 corrupt; a, b, c: 3 each; e: 2."""
    root = tmp_path / "faces"
    counts = {"d": 5, "z": 4, "a": 3, "b": 3, "c": 3, "e": 2}
    for k, (name, n) in enumerate(counts.items()):
        for i in range(n):
            write_image(root / name / f"{i}.png", noise(144, 144, 10 * k + i))
    for i in (0, 1):
        (root / "z" / f"{i}.png").write_bytes(b"\x89PNG garbage")
    return root


def test_top_identities_ties_by_name(ranked_root, tmp_path, monkeypatch):
    s = prepare_dataset(ranked_root, tmp_path / "o1", num_identities=3, min_images=3, verbose=False)
    assert (tmp_path / "o1" / "classes.txt").read_text().split() == ["a", "b", "d"]  # d, then a, b by name
    assert s["num_classes"] == 3 and s["train"]["images"] == 5 + 3 + 3 - s["val"]["images"]
    s = prepare_dataset(ranked_root, tmp_path / "o2", min_images=3, verbose=False)
    assert (tmp_path / "o2" / "classes.txt").read_text().split() == ["a", "b", "c", "d"]  # z: 2 readable

    # validation stops once the chosen identities beat every unchecked one (one identity per round here)
    monkeypatch.setattr(packing, "GROUP_IMAGES", 1)
    s = prepare_dataset(ranked_root, tmp_path / "o3", num_identities=2, min_images=3, verbose=False)
    assert (tmp_path / "o3" / "classes.txt").read_text().split() == ["a", "d"]
    assert s["identities_checked"] == 3  # d, z, a; b and c cannot beat a on the tie-break by name
    assert {x["path"] for x in s["skipped"]} == {"z/0.png", "z/1.png"}

    s = prepare_dataset(ranked_root, tmp_path / "o4", num_identities=9, min_images=3, verbose=False)
    assert s["num_classes"] == 4 and s["identities_shortfall"] == 5


def test_identity_list_order_and_errors(ranked_root, tmp_path, capsys):
    lst = tmp_path / "ids.txt"
    lst.write_text("# subset\nd\n\ne\na\n")
    s = prepare_dataset(ranked_root, tmp_path / "o", identity_list=str(lst), val_fraction=0.0, verbose=False)
    assert (tmp_path / "o" / "classes.txt").read_text().split() == ["d", "e", "a"]
    assert s["train"]["images"] == 10

    lst.write_text("d\nghost\nmissing_too\n")
    with pytest.raises(PrepareError, match="ghost.*missing_too"):
        prepare_dataset(ranked_root, tmp_path / "o2", identity_list=str(lst))
    assert prepare_cli.main(["--root", str(ranked_root), "--out", str(tmp_path / "o3"),
                             "--identity-list", str(lst)]) == 2
    assert "ghost" in capsys.readouterr().err
    assert not (tmp_path / "o3" / "train.rec").exists()

    (ranked_root / "z" / "2.png").write_bytes(b"")
    (ranked_root / "z" / "3.png").write_bytes(b"junk")
    with pytest.raises(PrepareError, match="no readable image: z"):
        prepare_dataset(ranked_root, tmp_path / "o4", identity_list=["z", "a"])
    with pytest.raises(PrepareError, match="twice"):
        lst.write_text("a\na\n")
        prepare_dataset(ranked_root, tmp_path / "o5", identity_list=str(lst))
    with pytest.raises(PrepareError, match="either"):
        prepare_dataset(ranked_root, tmp_path / "o6", identity_list=["a"], min_images=2)


def test_existing_output_needs_force(ranked_root, tmp_path):
    out = tmp_path / "out"
    prepare_dataset(ranked_root, out, num_identities=1, verbose=False)
    assert (out / "classes.txt").read_text().split() == ["d"]
    with pytest.raises(PrepareError, match="--force"):
        prepare_dataset(ranked_root, out, num_identities=2, verbose=False)
    assert (out / "classes.txt").read_text().split() == ["d"]
    prepare_dataset(ranked_root, out, num_identities=2, force=True, verbose=False)
    assert (out / "classes.txt").read_text().split() == ["a", "d"]


def test_missing_root_and_output_inside_root(tmp_path, ranked_root):
    with pytest.raises(PrepareError, match="root folder not found"):
        prepare_dataset(tmp_path / "nowhere", tmp_path / "out")
    s = prepare_dataset(ranked_root, ranked_root / "packed", verbose=False)  # made after the scan: not seen
    assert "packed" not in {item["path"] for item in s["ignored"]}
    s = prepare_dataset(ranked_root, ranked_root / "packed", force=True, verbose=False)
    assert {"path": "packed", "reason": "the output folder"} in s["ignored"]
    assert "packed" not in (ranked_root / "packed" / "classes.txt").read_text().split()


# ---------------------------------------------------------------------------------------------------------------
# Whatever the folder holds, the builder neither crashes nor hangs; a failed build removes what it wrote

def test_links_pipes_and_odd_names_are_listed_not_fatal(ranked_root, tmp_path):
    os.symlink("loop", ranked_root / "loop")  # a link to itself
    os.symlink("../a", ranked_root / "a" / "up")  # a folder link inside an identity: not searched
    os.symlink("nothing.jpg", ranked_root / "a" / "broken.jpg")
    os.symlink(ranked_root / "d", ranked_root / "d_again")  # one folder under two names would be two labels
    os.mkfifo(ranked_root / "b" / "pipe.jpg")  # reading it would wait for a writer forever
    write_image(ranked_root / "c" / os.fsdecode(b"bad\xff.png"), noise(144, 144, 99))  # not UTF-8
    os.symlink(ranked_root / "e", tmp_path / "linked_e")
    out = tmp_path / "out"
    # in a child process with a timeout, so that a hang fails the test instead of stopping the suite
    done = subprocess.run([sys.executable, "-m", "lightcnn", "prepare", "--root", str(ranked_root), "--out", str(out),
                           "--val-fraction", "0"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    ignored = {item["path"]: item["reason"] for item in summary["ignored"]}
    assert ignored == {"loop": "symbolic link loop", "a/up": "sub-folder inside an identity folder (not searched)",
                       "a/broken.jpg": "broken symbolic link",
                       "d_again": "the same folder as identity d (a symbolic link to it)",
                       "b/pipe.jpg": "not a regular file (a pipe, socket or device)",
                       "c/bad\\xff.png": "name is not valid UTF-8"}
    assert summary["num_images"] == 3 + 3 + 3 + 5 + 2 + 2  # a, b, c, d, e and z's two readable ones
    for path in ignored:
        assert path in done.stdout


def test_a_symlinked_identity_folder_is_an_identity(tmp_path, ranked_root):
    root = tmp_path / "linked"
    root.mkdir()
    for name in ("a", "d"):
        os.symlink(ranked_root / name, root / name)
    summary = prepare_dataset(root, tmp_path / "out", val_fraction=0.0, verbose=False)
    assert summary["num_classes"] == 2 and summary["num_images"] == 8 and summary["ignored"] == []


def run_prepare(root, out):
    return subprocess.run([sys.executable, "-m", "lightcnn", "prepare", "--root", str(root), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)


def error_lines(done):
    return [line for line in done.stderr.splitlines() if not line.startswith("[prepare]")]


def test_a_read_only_output_is_one_line_and_leaves_nothing(ranked_root, mounted):
    disk = mounted("ro,size=1m")
    done = run_prepare(ranked_root, disk / "out")
    assert done.returncode == 2
    assert error_lines(done) == [f"error: cannot create the output folder {disk / 'out'}: Read-only file system"]
    done = run_prepare(ranked_root, disk)  # the read-only folder itself
    assert error_lines(done) == [f"error: cannot write {disk / packing.SPOOL}: Read-only file system"]
    assert os.listdir(disk) == []


@pytest.mark.parametrize("size, failing", [("128k", packing.SPOOL), ("400k", "train.rec.tmp")])
def test_a_full_disk_is_one_line_and_frees_what_it_wrote(tmp_path, mounted, size, failing):
    """The spool fills the disk (128k), or the records do once the spool fits (400k); either way the error names
    the file, and the disk is left as empty as it was (the cleanup used to raise first and leave the spool)."""
    root = tmp_path / "faces"
    for i in range(12):  # noise: ~21 KB of JPEG each, ~250 KB in the spool and the same again in the records
        write_image(root / f"p{i % 3}" / f"{i}.png", noise(144, 144, i))
    disk = mounted(f"size={size}")
    done = run_prepare(root, disk / "out")
    assert done.returncode == 2
    (line,) = error_lines(done)
    assert line.startswith(f"error: cannot write {disk / 'out' / failing}: No space left on device"), line
    assert os.listdir(disk) == [] and shutil.disk_usage(disk).used == 0


def test_a_failed_build_removes_the_folder_it_made_and_keeps_one_it_did_not(ranked_root, tmp_path):
    (ranked_root / "z" / "2.png").write_bytes(b"")
    (ranked_root / "z" / "3.png").write_bytes(b"junk")
    with pytest.raises(PrepareError, match="no readable image: z"):
        prepare_dataset(ranked_root, tmp_path / "new", identity_list=["z"], verbose=False)
    assert not (tmp_path / "new").exists()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("the user's")
    with pytest.raises(PrepareError, match="no readable image: z"):
        prepare_dataset(ranked_root, tmp_path / "mine", identity_list=["z"], verbose=False)
    assert os.listdir(tmp_path / "mine") == ["notes.txt"]
    (tmp_path / "file").write_text("")
    with pytest.raises(PrepareError, match="exists and is not a folder"):
        prepare_dataset(ranked_root, tmp_path / "file")


# ---------------------------------------------------------------------------------------------------------------
# Non-square faces: a choice, counted, recorded for training and extraction; and --align

def test_orl_faces_are_centre_cropped_by_default_and_it_is_said(orl, capsys):
    _, out, summary = orl
    assert summary["not_square"] == 400 and summary["options"]["fit"] == "crop"
    # the whole preprocessing, with the face box when MediaPipe measured it (also beside it, for earlier readers)
    box = summary["face_box"] and images.FaceBox.from_dict(summary["face_box"])
    assert summary["preprocess"] == images.Preprocess(face_box=box or None).to_dict()
    prepare_cli.print_summary(summary)
    assert "400 not square, centre-cropped to a square (--fit crop)" in capsys.readouterr().out
    assert dataset_summary.read_stored_preprocess(out / "train.rec") == (images.Preprocess(face_box=box or None),
                                                                          str(out / "summary.json"))


@pytest.mark.parametrize("fit", images.FITS)
def test_each_fit_is_what_the_extractor_does(tmp_path, fit):
    root = tmp_path / "faces"
    portrait = np.repeat(np.linspace(0, 255, 112).astype(np.uint8)[:, None], 92, axis=1)  # dark top, light bottom
    write_image(root / "p" / "a.png", portrait)
    write_image(root / "p" / "square.png", noise(144, 144, 1))
    summary = prepare_dataset(root, tmp_path / "out", val_fraction=0.0, fit=fit, verbose=False)
    assert summary["not_square"] == 1 and summary["preprocess"]["fit"] == fit
    rows = {rel: i for i, _, rel in read_lst(tmp_path / "out" / "train.lst")}
    stored = dict((i, img) for i, _, img in read_records(str(tmp_path / "out" / "train.rec")))[rows["p/a.png"]]
    expected = images.resize_square(portrait, 144, fit)
    assert np.abs(stored.astype(int) - expected).mean() < 1.0  # only the JPEG loss
    top = stored[0, 72]
    assert {"crop": 15 < top < 35, "pad": top < 3, "stretch": top < 3}[fit], top  # crop starts at row 10 of 112
    assert (stored[:, :10] < 3).all() == (fit == "pad")  # the black bars


def test_a_dataset_of_an_earlier_release_means_stretch(tmp_path):
    (tmp_path / "summary.json").write_text(json.dumps({"options": {"image_size": 144}, "num_classes": 2}))
    assert dataset_summary.read_stored_preprocess(tmp_path / "train.rec")[0] == images.Preprocess(fit="stretch")
    # the release before the whole record: image_size, fit and align, the face box beside them
    box = {"share": 0.86, "x": 0.5, "y": 0.6, "images": 40}
    (tmp_path / "summary.json").write_text(json.dumps({"preprocess": {"image_size": 144, "fit": "pad", "align": None},
                                                       "face_box": box}))
    assert dataset_summary.read_stored_preprocess(tmp_path / "train.rec")[0] == images.Preprocess(
        fit="pad", face_box=images.FaceBox.from_dict(box))
    (tmp_path / "summary.json").unlink()
    assert dataset_summary.read_stored_preprocess(tmp_path / "train.rec")[0] is None  # im2rec's: nothing is known
    (tmp_path / "summary.json").write_text("{not json")
    with pytest.raises(dataset_summary.SummaryError, match="cannot be read as the dataset builder's summary"):
        dataset_summary.read_stored_preprocess(tmp_path / "train.rec")
    assert prepare.CLASSES_FILE == data.CLASSES_FILE


@pytest.mark.slow
def test_align_packs_aligned_faces_and_lists_photos_without_one(shared_data, tmp_path):
    pytest.importorskip("mediapipe", reason="mediapipe not installed: pip install --no-deps -r "
                                            "requirements-align.txt")
    from lightcnn import align
    from lightcnn.align_folder import align_folder
    lfw = shared_data / "lfw_gray144"
    root = tmp_path / "photos"
    for name in ("Colin_Powell", "Tony_Blair"):
        (root / name).mkdir(parents=True)
        for fname in sorted(os.listdir(lfw / name))[:2]:
            os.symlink(lfw / name / fname, root / name / fname)
    write_image(root / "Tony_Blair" / "wall.png", np.full((120, 100), 128, np.uint8))
    done = subprocess.run([sys.executable, "-m", "lightcnn", "prepare", "--root", str(root), "--out",
                           str(tmp_path / "out"), "--align", "--min-size", "30", "--val-fraction", "0"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["skipped"] == [{"path": "Tony_Blair/wall.png", "reason": "not aligned: no face found"}]
    assert summary["preprocess"] == images.Preprocess(align=images.TEMPLATE).to_dict()
    assert summary["options"]["align_policy"]["min_size"] == 30 and summary["num_images"] == 4
    assert "Tony_Blair/wall.png: not aligned: no face found" in done.stdout
    rows = {rel: i for i, _, rel in read_lst(tmp_path / "out" / "train.lst")}
    stored = dict((i, img) for i, _, img in read_records(str(tmp_path / "out" / "train.rec")))
    rel = sorted(rows)[0]
    with align.Aligner(min_size=30) as aligner:
        expected = align.align_file(aligner, root / rel).image
    assert np.abs(stored[rows[rel]].astype(int) - expected).mean() < 1.5  # the same alignment, JPEG q95
    bad = subprocess.run([sys.executable, "-m", "lightcnn", "prepare", "--root", str(root), "--out",
                          str(tmp_path / "o2"), "--min-size", "30"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "alignment settings: add --align" in bad.stderr

    # a tree written by lightcnn.align is packed as it is and recorded as aligned (MediaPipe not needed)
    align_folder(root, tmp_path / "aligned", min_size=30, workers=1, verbose=False)
    code = (f"import sys; sys.modules['mediapipe'] = None; from lightcnn.cli import prepare; "
            f"sys.exit(prepare.main(['--root', {str(tmp_path / 'aligned')!r}, '--out', {str(tmp_path / 'o3')!r}, "
            f"'--align']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "holds faces aligned by lightcnn.align" in done.stderr and "(not aligned again)" in done.stderr
    tree = json.loads((tmp_path / "o3" / "summary.json").read_text())
    assert tree["preprocess"] == summary["preprocess"] and tree["num_images"] == 4
