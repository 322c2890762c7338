"""The data a training configuration asks for: RecordIO files (checked before training), or synthetic batches for
timing the loop (``--benchmark 1``)."""
import dataclasses

from lightcnn import data
from lightcnn.dataset_summary import read_stored_preprocess
from lightcnn.images import FACE_RULES
from lightcnn.training.config import ConfigError
from lightcnn.training.loop import TrainingData

BENCHMARK_CLASSES = 1000  # synthetic data without --num-classes


def training_data(config):
    """A :class:`~lightcnn.training.loop.TrainingData` for ``config``: the training iterator factory (a new, seeded
    iterator per epoch, so a resumed run sees the very same batches), the number of classes, the validation
    iterator and the complete preprocessing, which every later user (the checks, the checkpoints, verification)
    receives. Problems with the files are errors before any training."""
    if config.benchmark:
        num_classes = config.num_classes or BENCHMARK_CLASSES
        preprocess = config.preprocess  # synthetic batches: no dataset, the config's settings

        def make_synthetic(epoch, batch_size, num_parts, part_index):
            return data.SyntheticIter(batch_size, preprocess.data_shape, num_classes=num_classes,
                                      num_batches=config.benchmark_batches, seed=config.seed + epoch)
        return TrainingData(make_synthetic, num_classes, preprocess=preprocess)

    preprocess = stored_faces(config)
    data.check_record_file(config.data_train, preprocess)
    num_classes = data.check_num_classes(None, config.data_train)
    if config.num_classes is not None and config.num_classes != num_classes:
        raise ConfigError("num_classes", f"{config.num_classes} classes disagree with the dataset: "
                                         f"{config.data_train} has {num_classes} (its classes.txt, or the largest "
                                         f"label + 1)")

    def make_records(epoch, batch_size, num_parts, part_index):
        return data.train_iter(config.data_train, batch_size, preprocess, seed=config.seed + epoch,
                               num_parts=num_parts, part_index=part_index, nthreads=config.data_nthreads,
                               mirror=config.mirror)
    val_iter = None
    if config.data_val:
        data.check_record_file(config.data_val, preprocess)
        data.check_num_classes(num_classes, config.data_val)
        val_iter = data.eval_iter(config.data_val, config.batch_size, preprocess, nthreads=config.data_nthreads)
    classes = data.classes_file_of(config.data_train)
    return TrainingData(make_records, num_classes, val_iter, classes, preprocess)


def stored_faces(config):
    """The complete preprocessing of the training faces, made once: the config's input settings (size, scale,
    mean) with how the dataset builder made the faces (fit, align, and the face box it measured on them, from the
    summary.json beside the .rec), which the checkpoints record so that extraction repeats it. A validation set
    made differently is an error."""
    stored, source = read_stored_preprocess(config.data_train)
    if config.data_val:
        val_stored, val_source = read_stored_preprocess(config.data_val)
        if val_stored is not None and stored is not None and \
                any(name in FACE_RULES for name, _, _ in val_stored.mismatches(stored)):
            raise ConfigError("data_val", f"its faces were made with {val_stored.face_rules()} ({val_source}), the "
                                          f"training faces with {stored.face_rules()} ({source})")
    if stored is None:  # not made by lightcnn.prepare: the config's (default) rules
        return config.preprocess
    try:
        return dataclasses.replace(config.preprocess, **stored.face_rules(), face_box=stored.face_box)
    except ValueError as error:
        raise ConfigError("image_size", f"{source}: {error}") from None
