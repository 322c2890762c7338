"""The input pipeline: preprocessing record, iterators, their seeds and pads, and the checks before training."""
import logging
import os

import numpy as np
import pytest

import cv2
import mxnet as mx

from lightcnn import data, images
from lightcnn.images import Preprocess
from lightcnn.prepare import prepare_dataset

NUM_IDS, PER_ID = 5, 12


def write_rec(path, images, labels, ext=".jpg"):
    """A .rec/.idx of the given uint8 images and labels, ids 0..n-1."""
    path = str(path)
    writer = mx.recordio.MXIndexedRecordIO(data.idx_path_of(path), path, "w")
    for i, (img, label) in enumerate(zip(images, labels)):
        writer.write_idx(i, mx.recordio.pack_img(mx.recordio.IRHeader(0, float(label), i, 0), img, quality=95,
                                                 img_fmt=ext))
    writer.close()
    return path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """5 identities x 12 noise images (noise makes every crop and mirror distinguishable), packed by prepare."""
    base = tmp_path_factory.mktemp("noise")
    rs = np.random.RandomState(0)
    for k in range(NUM_IDS):
        os.makedirs(base / "faces" / f"id{k}")
        for i in range(PER_ID):
            cv2.imwrite(str(base / "faces" / f"id{k}" / f"{i}.png"), rs.randint(0, 256, (144, 144), dtype=np.uint8))
    prepare_dataset(base / "faces", base / "out", val_fraction=0.25, seed=0, verbose=False)
    return base / "out"


def stored_images(rec_path):
    """[(id, label, jpeg bytes)] in .idx order."""
    reader = mx.recordio.MXIndexedRecordIO(data.idx_path_of(rec_path), rec_path, "r")
    out = []
    for key, _ in data.read_index(data.idx_path_of(rec_path)):
        header, payload = mx.recordio.unpack(reader.read_idx(key))
        out.append((key, header.label, payload))
    reader.close()
    return out


def batches(it, n=None):
    """The first ``n`` batches (all when ``None``) as numpy ``(data, label, pad)``."""
    out = []
    for b in it:
        out.append((b.data[0].asnumpy(), b.label[0].asnumpy(), b.pad))
        if n is not None and len(out) == n:
            break
    return out


def test_preprocess_record_round_trip():
    p = Preprocess(image_size=144, crop_size=128, scale=1 / 128.0, mean=127.5)
    assert Preprocess.from_dict(p.to_dict()) == p
    assert Preprocess().to_dict() == {"image_size": 144, "crop_size": 128, "scale": 1 / 255.0, "mean": 0.0,
                                      "fit": "crop", "align": None}
    assert Preprocess().data_shape == (1, 128, 128)
    with pytest.raises(ValueError, match="unknown"):
        Preprocess.from_dict({"image_size": 144, "colour": True})
    with pytest.raises(ValueError, match="crop_size"):
        Preprocess(image_size=100, crop_size=128)


def test_train_iter_same_seed_same_batches(dataset):
    rec = str(dataset / "train.rec")  # 45 images: 5 batches of 8 and a padded one
    a = batches(data.train_iter(rec, 8, seed=5))
    b = batches(data.train_iter(rec, 8, seed=5))
    # MXNet's on-demand variant decodes with every OpenMP thread: the seeds make threads irrelevant
    c = batches(data.train_iter(rec, 8, seed=5, prefetch=False))
    other = batches(data.train_iter(rec, 8, seed=6), 3)
    assert [pad for _, _, pad in a] == [0, 0, 0, 0, 0, 3]
    for (xa, ya, _), (xb, yb, _), (xc, yc, _) in zip(a, b, c):
        assert np.array_equal(xa, xb) and np.array_equal(ya, yb)
        assert np.array_equal(xa, xc) and np.array_equal(ya, yc)
    assert not all(np.array_equal(xa, xo) for (xa, _, _), (xo, _, _) in zip(a, other))
    assert not all(np.array_equal(ya, yo) for (_, ya, _), (_, yo, _) in zip(a, other))
    labels = np.concatenate([y[:8 - pad] for _, y, pad in a])
    assert np.bincount(labels.astype(int)).tolist() == [9] * NUM_IDS  # one pass: every image once


def test_train_iter_augments_and_eval_iter_centres(dataset):
    rec = str(dataset / "train.rec")
    p = Preprocess()
    centre = {images.load_eval_image(jpeg, p).tobytes() for _, _, jpeg in stored_images(rec)}
    mirrored = {np.ascontiguousarray(images.load_eval_image(jpeg, p)[:, :, ::-1]).tobytes()
                for _, _, jpeg in stored_images(rec)}
    x, y, _ = batches(data.train_iter(rec, 16, seed=1), 1)[0]
    assert x.shape == (16, 1, 128, 128) and x.dtype == np.float32 and y.shape == (16,)
    assert 0.0 <= x.min() and x.max() <= 1.0
    plain = sum(s.tobytes() in centre or s.tobytes() in mirrored for s in x)
    assert plain <= 2  # a random crop is the centre one with probability 1/289
    x, _, _ = batches(data.train_iter(rec, 16, seed=1, mirror=False), 1)[0]
    assert sum(s.tobytes() in mirrored and s.tobytes() not in centre for s in x) == 0


def test_eval_iter_every_image_once_and_equals_load_eval_image(dataset):
    rec = str(dataset / "val.rec")
    stored = stored_images(rec)
    n = len(stored)
    assert n == NUM_IDS * 3
    p = Preprocess(mean=100.0, scale=0.02)
    expected = np.stack([images.load_eval_image(jpeg, p) for _, _, jpeg in stored])
    it = data.eval_iter(rec, 4, p)
    for _ in range(2):  # a second pass after reset() sees the same images (no MXNet roll-over)
        xs, ys, pads = [], [], []
        for b in it:
            real = b.data[0].shape[0] - b.pad
            xs.append(b.data[0].asnumpy()[:real])
            ys.append(b.label[0].asnumpy()[:real])
            pads.append(b.pad)
        it.reset()
        assert pads == [0, 0, 0, 1]
        assert np.array_equal(np.concatenate(xs), expected)  # bit-identical, in .idx order
        assert np.array_equal(np.concatenate(ys), [label for _, label, _ in stored])
    assert len(it) == 4 and it.num_records == n

    # shards: each image in exactly one part
    index = {e.tobytes(): i for i, e in enumerate(expected)}
    seen = []
    for part in range(2):
        for b in data.eval_iter(rec, 4, p, num_parts=2, part_index=part):
            seen += [index[s.tobytes()] for s in b.data[0].asnumpy()[:4 - b.pad]]
    assert sorted(seen) == list(range(n))

    # a batch larger than the data is capped, not a crash inside MXNet
    b = data.eval_iter(rec, 1000, p).next()
    assert b.data[0].shape[0] == n and b.pad == 0


def test_load_eval_image_of_files(tmp_path):
    img = np.random.RandomState(3).randint(0, 256, (112, 92), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "a.pgm"), img)
    out = images.load_eval_image(tmp_path / "a.pgm", Preprocess(fit="stretch"))
    resized = cv2.resize(img, (144, 144), interpolation=cv2.INTER_LINEAR)
    expected = Preprocess().normalize(images.center_crop(resized, 128))
    assert out.shape == (1, 128, 128) and out.dtype == np.float32 and np.array_equal(out[0], expected)
    # the default keeps the proportions: the centre 92x92 square, enlarged
    cropped = cv2.resize(img[10:102], (144, 144), interpolation=cv2.INTER_LINEAR)
    assert np.array_equal(images.load_eval_image(tmp_path / "a.pgm")[0],
                          Preprocess().normalize(images.center_crop(cropped, 128)))
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="bad.jpg"):
        images.load_eval_image(tmp_path / "bad.jpg")


def test_num_classes_from_classes_txt_or_labels(dataset, tmp_path):
    assert data.num_classes_of(str(dataset / "train.rec")) == NUM_IDS
    assert data.check_num_classes(NUM_IDS, str(dataset / "val.rec")) == NUM_IDS
    with pytest.raises(ValueError, match=r"7 classes disagree.*5 classes.*classes.txt"):
        data.check_num_classes(7, str(dataset / "train.rec"))
    imgs = [np.zeros((144, 144), np.uint8)] * 3
    rec = write_rec(tmp_path / "plain.rec", imgs, [0, 4, 2])
    assert data.classes_file_of(rec) is None and data.num_classes_of(rec) == 5


def test_label_out_of_range_names_the_record(tmp_path):
    imgs = [np.zeros((144, 144), np.uint8)] * 4
    rec = write_rec(tmp_path / "r.rec", imgs, [0, 1, 3, 2])
    (tmp_path / "classes.txt").write_text("a\nb\nc\n")
    with pytest.raises(ValueError, match=r"record id 2 .*label 3, outside \[0, 3\)"):
        data.check_num_classes(None, rec)
    rec = write_rec(tmp_path / "frac.rec", imgs, [0, 1.5, 1, 0])
    with pytest.raises(ValueError, match="record key 1 .*label 1.5"):
        data.check_num_classes(3, rec)


def test_missing_files_are_clear_errors(dataset, tmp_path):
    rec = tmp_path / "t.rec"
    rec.write_bytes((dataset / "val.rec").read_bytes())
    with pytest.raises(FileNotFoundError, match=r"index file.*t\.idx"):
        data.check_record_file(str(rec))
    with pytest.raises(FileNotFoundError, match=r"t\.idx"):
        data.train_iter(str(rec), 4)
    with pytest.raises(FileNotFoundError, match=r"record file.*nothing\.rec"):
        data.eval_iter(str(tmp_path / "nothing.rec"), 4)
    with pytest.raises(FileNotFoundError, match=r"t\.idx"):
        data.check_num_classes(None, str(rec))


def test_wrong_image_size_and_colour_records(tmp_path, caplog):
    small = write_rec(tmp_path / "small.rec", [np.zeros((100, 100), np.uint8)] * 3, [0, 1, 2])
    with pytest.raises(ValueError, match=r"100x100, expected 144x144"):
        data.check_record_file(small)
    assert data.check_record_file(small, Preprocess(image_size=100, crop_size=96))["num_records"] == 3

    rs = np.random.RandomState(0)
    colour = [rs.randint(0, 256, (144, 144, 3), dtype=np.uint8) for _ in range(4)]
    rec = write_rec(tmp_path / "colour.rec", colour, [0, 1, 0, 1])
    with caplog.at_level(logging.WARNING, logger="lightcnn.data"):
        assert data.check_record_file(rec)["colour"]
    assert "colour" in caplog.text
    b = data.eval_iter(rec, 4).next()
    assert b.data[0].shape == (4, 1, 128, 128)
    # the documented conversion: OpenCV's gray decode, the same in MXNet and in load_eval_image
    for (_, _, jpeg), x in zip(stored_images(rec), b.data[0].asnumpy()):
        assert np.array_equal(x, images.load_eval_image(jpeg))


def test_train_batch_larger_than_part_is_an_error(dataset):
    with pytest.raises(ValueError, match="fewer than the batch size"):
        data.train_iter(str(dataset / "val.rec"), 64)
    with pytest.raises(ValueError, match="part_index"):
        data.train_iter(str(dataset / "train.rec"), 4, num_parts=2, part_index=2)


def test_synthetic_iter():
    it = data.SyntheticIter(6, num_classes=10, num_batches=3, seed=1)
    assert it.provide_data[0].shape == (6, 1, 128, 128) and it.provide_label[0].shape == (6,)
    got = list(it)
    assert len(got) == 3 and len(list(it)) == 0
    it.reset()
    assert len(list(it)) == 3
    x, y = got[0].data[0].asnumpy(), got[0].label[0].asnumpy()
    assert x.shape == (6, 1, 128, 128) and x.dtype == np.float32 and 0 <= x.min() and x.max() < 1
    assert y.shape == (6,) and np.all((0 <= y) & (y < 10))
    assert data.SyntheticIter(2, data_shape=(1, 32, 32), num_batches=1).next().data[0].shape == (2, 1, 32, 32)
