"""The input pipeline: gray 144x144 RecordIO -> batches ``(N, 1, 128, 128)`` float32 and labels ``(N,)``.

The preprocessing rules are :mod:`lightcnn.images`' (a :class:`~lightcnn.images.Preprocess`); here they are applied
to RecordIO files:

- training: random ``crop_size`` crop, random horizontal mirror, shuffled order;
- evaluation (validation): centre crop, no mirror, file order, every image exactly once.

The iterators are MXNet's C++ ``ImageRecordIter`` (far faster than the network trains on a CPU), wrapped so that
every ``reset()`` starts a fresh pass. What we verified in MXNet 1.9.1 (``src/io/iter_image_recordio_2.cc`` and by
experiment):

- ``seed`` seeds the shuffle of the ``.idx`` order (the indexed-RecordIO split); it does *not* touch augmentation.
- ``seed_aug`` re-seeds the augmentation RNG before every image with ``seed_aug + position in the batch``.
  Without it each decoding thread keeps an RNG seeded ``(thread + 1) * 111`` whatever ``seed`` is, and images
  reach threads in a racy order, so crops differ from run to run as soon as more than one thread decodes.
  With it the output is bit-identical for any thread count; the price is that every batch of one pass uses the
  same ``batch_size`` crop offsets and mirror flags, dealt to different (shuffled) images. ``train_iter`` spaces
  ``seed_aug`` by a prime per seed so that consecutive epochs do not reuse shifted streams.
- ``shuffle_chunk_seed`` only applies to shuffling a ``.rec`` *without* ``.idx`` (with ``shuffle_chunk_size``);
  it has no effect here because the ``.idx`` is always used.
- ``round_batch=True`` (used here) fills the last partial batch by wrapping to the start of the (part of the)
  data and reports the count in ``batch.pad``; the padded samples are at the end of the batch. MXNet then
  "rolls over": its next ``reset()`` would skip the images used as padding, which is why our wrapper builds a
  fresh ``ImageRecordIter`` on ``reset()``. ``round_batch=False`` is unusable in 1.9.1: it reports ``pad=0``
  and leaves stale samples in the tail of the last batch.
- The prefetching variant (the default, ``prefetch=True``) decodes in a background thread; MXNet caps its
  ``preprocess_threads`` by the core count (it logs 1 decoding thread on a 2-core machine whatever is asked);
  ``prefetch=False`` selects MXNet's "CPU" variant, which decodes on demand with ``OMP_NUM_THREADS``
  threads and ignores ``preprocess_threads``.
- A batch larger than twice the images of a part fails deep inside MXNet; we check sizes first.
- A stored colour image is decoded to gray by ``ImageRecordIter`` when the data shape has one channel (OpenCV's
  gray decode); ``check_record_file`` warns about it and ``images.load_eval_image`` converts the same way.
"""
import logging
import math
import os
import struct

import numpy as np

import cv2
import mxnet as mx

from lightcnn.images import Preprocess

logger = logging.getLogger(__name__)

CLASSES_FILE = "classes.txt"
_SEED_AUG_STRIDE = 7919  # a prime > any sane batch size: epoch seeds never share augmentation streams
_SEED_AUG_MOD = 2 ** 31 - 2 ** 16  # keeps seed_aug + position + 111 inside a 32-bit int


# ----------------------------------------------------------------------------------------------------------------
# RecordIO files: paths, headers, labels, sanity checks.

def idx_path_of(rec_path):
    return os.path.splitext(os.fspath(rec_path))[0] + ".idx"


def classes_file_of(rec_path):
    """``classes.txt`` beside the ``.rec`` (label i = line i), or ``None`` when there is none."""
    path = os.path.join(os.path.dirname(os.path.abspath(rec_path)), CLASSES_FILE)
    return path if os.path.isfile(path) else None


def read_classes(path):
    with open(path, encoding="utf-8") as f:
        names = [line.rstrip("\r\n") for line in f]
    while names and not names[-1]:
        names.pop()
    return names


def _require_files(rec_path):
    rec_path = os.fspath(rec_path)
    idx_path = idx_path_of(rec_path)
    for path, what in ((rec_path, "record file"), (idx_path, "index file (written beside the .rec by "
                                                             "lightcnn.prepare / im2rec)")):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{what} not found: {path}")
    return rec_path, idx_path


def read_index(idx_path):
    """The ``.idx`` as a list of ``(key, offset)`` in file order."""
    entries = []
    with open(idx_path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            parts = line.split("\t")
            try:
                entries.append((int(parts[0]), int(parts[1])))
            except (IndexError, ValueError):
                raise ValueError(f"{idx_path}:{n}: not a 'key<TAB>offset' line: {line[:80]!r}") from None
    return entries


_REC_MAGIC = 0xCED7230A
_IR_HEADER = struct.Struct("IfQQ")  # flag, label, id, id2: mx.recordio.IRHeader


def _record_start(f, rec_path, size, key, offset):
    """The first bytes of a record (magic, length, image header), after checking that the whole record lies inside
    the file: a truncated .rec, or an .idx of another file, is an error here rather than in MXNet's C++ reader."""
    if offset + 8 + _IR_HEADER.size > size:
        raise ValueError(f"{rec_path}: record key {key} at offset {offset} lies beyond the end of the file "
                         f"({size} bytes): the .rec is truncated or the .idx belongs to another file")
    f.seek(offset)
    raw = f.read(8 + _IR_HEADER.size)
    magic, length = struct.unpack("II", raw[:8])
    if magic != _REC_MAGIC:
        raise ValueError(f"{rec_path}: no record at offset {offset} (key {key}): the .idx does not match the .rec")
    end = offset + 8 + (length & ((1 << 29) - 1))  # the top 3 bits flag multi-part records
    if end > size:
        raise ValueError(f"{rec_path}: record key {key} at offset {offset} ends at byte {end}, beyond the end of "
                         f"the file ({size} bytes): the .rec is truncated")
    return raw


def read_labels(rec_path):
    """Labels of every record, reading only the headers through the ``.idx`` offsets.

    Returns ``(ids, labels)`` as int64 arrays in ``.idx`` order. A record with a non-integer, negative or
    multi-valued label is an error naming it.
    """
    rec_path, idx_path = _require_files(rec_path)
    index = read_index(idx_path)
    ids = np.empty(len(index), np.int64)
    labels = np.empty(len(index), np.int64)
    size = os.path.getsize(rec_path)
    with open(rec_path, "rb") as f:
        for i, (key, offset) in enumerate(index):
            raw = _record_start(f, rec_path, size, key, offset)
            flag, label, rec_id, _ = _IR_HEADER.unpack(raw[8:])
            if flag != 0:
                raise ValueError(f"{rec_path}: record key {key} (id {rec_id}) has {flag} labels; one class label "
                                 f"per image is expected")
            if not (math.isfinite(label) and label >= 0 and label == int(label)):
                raise ValueError(f"{rec_path}: record key {key} (id {rec_id}) has label {label}, not a class "
                                 f"index >= 0")
            ids[i] = rec_id
            labels[i] = int(label)
    return ids, labels


def num_classes_of(rec_path):
    """Number of classes: lines of ``classes.txt`` beside the ``.rec``, else the largest label + 1."""
    classes = classes_file_of(rec_path)
    if classes:
        return len(read_classes(classes))
    _, labels = read_labels(rec_path)
    if labels.size == 0:
        raise ValueError(f"{rec_path} holds no records")
    return int(labels.max()) + 1


def check_labels(rec_path, num_classes):
    """Every label of ``rec_path`` must be in ``[0, num_classes)``; else an error naming the first bad record."""
    ids, labels = read_labels(rec_path)
    bad = np.flatnonzero(labels >= num_classes)
    if bad.size:
        i = bad[0]
        raise ValueError(f"{rec_path}: record id {ids[i]} (position {i} in the .idx) has label {labels[i]}, outside "
                         f"[0, {num_classes}); {bad.size} record(s) in all are out of range")
    return labels


def check_num_classes(given, rec_path):
    """The dataset's number of classes, checked against ``given`` (``None``: take the dataset's) and the labels.

    Raises ``ValueError`` before training when ``given`` disagrees with ``classes.txt`` / the labels, or when a
    label falls outside ``[0, C)``.
    """
    found = num_classes_of(rec_path)
    source = classes_file_of(rec_path) or "the largest label + 1"
    if given is not None and int(given) != found:
        raise ValueError(f"{given} classes disagree with the dataset: {found} classes in {source} "
                         f"(for {rec_path})")
    check_labels(rec_path, found)
    return found


def check_record_file(rec_path, preprocess=Preprocess(), samples=3):
    """Check a ``.rec`` before MXNet reads it: files present, images decodable and ``image_size`` square.

    Looks at the first, middle and last records (``samples`` of them spread over the file). Missing ``.rec`` /
    ``.idx``: ``FileNotFoundError`` naming the file. Wrong size or undecodable image: ``ValueError`` naming the
    record. Colour images are accepted with a warning (ImageRecordIter decodes them to gray).
    Returns ``{"num_records", "colour"}``.
    """
    rec_path, idx_path = _require_files(rec_path)
    index = read_index(idx_path)
    if not index:
        raise ValueError(f"{rec_path}: the index {idx_path} lists no records")
    picks = sorted({round(i * (len(index) - 1) / max(samples - 1, 1)) for i in range(samples)})
    size = preprocess.image_size
    colour = False
    file_size = os.path.getsize(rec_path)
    with open(rec_path, "rb") as f:
        for pos in picks + [max(range(len(index)), key=lambda i: index[i][1])]:  # and the record nearest the end
            _record_start(f, rec_path, file_size, *index[pos])
    reader = mx.recordio.MXIndexedRecordIO(idx_path, rec_path, "r")
    try:
        for pos in picks:
            key = index[pos][0]
            try:
                header, payload = mx.recordio.unpack(reader.read_idx(key))
            except Exception as error:  # a damaged record: name it rather than crash later
                raise ValueError(f"{rec_path}: cannot read record key {key}: {error}") from None
            arr = np.frombuffer(payload, np.uint8)
            img = cv2.imdecode(arr, cv2.IMREAD_UNCHANGED) if arr.size else None
            if img is None:
                raise ValueError(f"{rec_path}: record key {key} (id {header.id}) holds no decodable image")
            if img.shape[:2] != (size, size):
                raise ValueError(f"{rec_path}: record key {key} (id {header.id}) is {img.shape[1]}x{img.shape[0]}, "
                                 f"expected {size}x{size}; repack with `python -m lightcnn prepare --image-size "
                                 f"{size}` or pass the matching image size")
            colour = colour or (img.ndim == 3 and img.shape[2] > 1)
    finally:
        reader.close()
    if colour:
        logger.warning("%s holds colour images; they are decoded to gray (OpenCV's gray decode)", rec_path)
    return {"num_records": len(index), "colour": colour}


def part_size(num_records, num_parts, part_index):
    """Records in one part, as MXNet's indexed RecordIO split cuts them (contiguous, ceil(n / parts) each)."""
    step = -(-num_records // num_parts)
    return max(0, min((part_index + 1) * step, num_records) - min(part_index * step, num_records))


# ----------------------------------------------------------------------------------------------------------------
# Iterators.

class RecordIter(mx.io.DataIter):
    """An ``ImageRecordIter`` that starts a fresh, identical pass on every ``reset()``.

    MXNet's own ``reset()`` after a padded batch "rolls over" (skips the padding images next time); building a new
    C++ iterator avoids that, so an evaluation pass always sees every image exactly once. ``num_records`` is the
    number of images in this part. The last batch is padded by wrapping to the start; ``batch.pad`` counts the
    padded samples at its end.
    """

    def __init__(self, batch_size, num_records, kwargs):
        super().__init__(batch_size)
        self.num_records = num_records
        self._kwargs = dict(kwargs, batch_size=batch_size)
        self._iter = None  # built on first use: the C++ iterator starts decoding as soon as it exists
        self.provide_data = [mx.io.DataDesc("data", (batch_size,) + tuple(kwargs["data_shape"]), np.float32)]
        self.provide_label = [mx.io.DataDesc("softmax_label", (batch_size,), np.float32)]

    def reset(self):
        self._iter = None

    def next(self):
        if self._iter is None:
            self._iter = mx.io.ImageRecordIter(**self._kwargs)
        return self._iter.next()

    def __len__(self):
        return (self.num_records + self.batch_size - 1) // self.batch_size


def _common_kwargs(rec_path, preprocess, num_parts, part_index, nthreads, prefetch):
    if not 0 <= part_index < num_parts:
        raise ValueError(f"part_index {part_index} must be in [0, num_parts={num_parts})")
    rec_path, idx_path = _require_files(rec_path)
    kwargs = dict(
        path_imgrec=rec_path, path_imgidx=idx_path,
        data_shape=preprocess.data_shape,  # one channel: MXNet decodes gray
        mean_r=float(preprocess.mean), scale=float(preprocess.scale),
        num_parts=num_parts, part_index=part_index,
        preprocess_threads=int(nthreads or os.cpu_count() or 1),
        round_batch=True, label_width=1, verbose=False,
        device_id=-1,  # plain cpu(0) arrays (not pinned), so split_and_load works for any device list
    )
    if not prefetch:
        kwargs["ctx"] = "cpu"
    return kwargs


def _records_in_part(rec_path, num_parts, part_index):
    return part_size(len(read_index(idx_path_of(rec_path))), num_parts, part_index)


def train_iter(rec_path, batch_size, preprocess=Preprocess(), seed=0, num_parts=1, part_index=0, nthreads=None,
               shuffle=True, mirror=True, prefetch=True):
    """Training batches: shuffled, random ``crop_size`` crop, random mirror; ``data (N, 1, 128, 128)`` float32.

    Create a new iterator every epoch with ``seed = base_seed + epoch``: the same seed gives bit-identical
    batches (order and augmentation), whatever the thread count. ``num_parts``/``part_index`` shard the data for
    distributed training. The last partial batch is completed by wrapping around (``batch.pad`` > 0); training on
    the full batch is harmless.
    """
    kwargs = _common_kwargs(rec_path, preprocess, num_parts, part_index, nthreads, prefetch)
    n = _records_in_part(rec_path, num_parts, part_index)
    if n < batch_size:
        raise ValueError(f"{rec_path}: part {part_index} of {num_parts} holds {n} images, fewer than the batch size "
                         f"{batch_size}")
    seed = int(seed)
    kwargs.update(shuffle=bool(shuffle), seed=seed % (2 ** 31), seed_aug=(seed * _SEED_AUG_STRIDE) % _SEED_AUG_MOD,
                  rand_crop=True, rand_mirror=bool(mirror))
    return RecordIter(batch_size, n, kwargs)


def eval_iter(rec_path, batch_size, preprocess=Preprocess(), num_parts=1, part_index=0, nthreads=None,
              prefetch=True):
    """Evaluation batches in file order: centre crop, no mirror; every image exactly once per pass.

    The last batch is padded by wrapping around; drop its last ``batch.pad`` samples. ``batch_size`` is capped at
    the number of images in the part (MXNet cannot pad more than one pass).
    """
    kwargs = _common_kwargs(rec_path, preprocess, num_parts, part_index, nthreads, prefetch)
    n = _records_in_part(rec_path, num_parts, part_index)
    if n == 0:
        raise ValueError(f"{rec_path}: part {part_index} of {num_parts} holds no images")
    kwargs.update(shuffle=False, rand_crop=False, rand_mirror=False)
    return RecordIter(min(batch_size, n), n, kwargs)


class SyntheticIter(mx.io.DataIter):
    """Random data with the real input's shapes, to time the training loop without a dataset.

    One batch of uniform [0, 1) data and random labels is drawn once (from ``seed``) and served ``num_batches``
    times per pass, so the iterator costs nothing next to the network.
    """

    def __init__(self, batch_size, data_shape=Preprocess().data_shape, num_classes=1000, num_batches=100, seed=0):
        super().__init__(batch_size)
        rs = np.random.RandomState(seed)
        self.num_batches = num_batches
        self._data = mx.nd.array(rs.uniform(size=(batch_size,) + tuple(data_shape)), dtype=np.float32)
        self._label = mx.nd.array(rs.randint(0, num_classes, size=(batch_size,)), dtype=np.float32)
        self.provide_data = [mx.io.DataDesc("data", self._data.shape, np.float32)]
        self.provide_label = [mx.io.DataDesc("softmax_label", self._label.shape, np.float32)]
        self._count = 0

    def reset(self):
        self._count = 0

    def next(self):
        if self._count >= self.num_batches:
            raise StopIteration
        self._count += 1
        return mx.io.DataBatch(data=[self._data], label=[self._label], pad=0,
                               provide_data=self.provide_data, provide_label=self.provide_label)

    def __len__(self):
        return self.num_batches
