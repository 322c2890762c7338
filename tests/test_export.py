"""lightcnn.interop.export: random LightCNN-9 and -29v2 checkpoints exported to ONNX and run in onnxruntime on real LFW
crops, with a batch of 3 and a batch of 1 (the dynamic batch axis); the embedding (and, on request, the logits)
must equal MXNet's. Also what the file declares (opset 13, input/output names and shapes, metadata) and the
one-line message without onnx."""
import json
import os
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="ONNX export is optional (pip install onnx==1.14.1)")
ort = pytest.importorskip("onnxruntime", reason="running the exported model needs onnxruntime "
                                                "(pip install onnxruntime==1.19.2)")

import mxnet as mx  # noqa: E402

from lightcnn import checkpoint, init  # noqa: E402
from lightcnn.cli import export as export_cli  # noqa: E402
from lightcnn.interop import export  # noqa: E402
from lightcnn.images import Preprocess, load_eval_image  # noqa: E402
from lightcnn.model import ModelSpec  # noqa: E402
from lightcnn.optional import MissingDependencyError  # noqa: E402

NUM_CLASSES = 20
TOLERANCE = 1e-5  # max |difference| / max |value|


def relative_difference(actual, expected):
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


@pytest.fixture(scope="module")
def batch(shared_data):
    """The first image of 3 LFW people, (3, 1, 128, 128), preprocessed as the checkpoints below record."""
    root = shared_data / "lfw_gray144"
    names = sorted(os.listdir(root))[:3]
    return np.stack([load_eval_image(root / n / sorted(os.listdir(root / n))[0], Preprocess()) for n in names])


@pytest.fixture(scope="module")
def random_checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("checkpoints")
    made = {}

    def get(network):
        if network not in made:
            mx.random.seed(3)
            spec = ModelSpec(network, NUM_CLASSES)
            net = spec.build()
            net.initialize(init.xavier())
            net.hybridize()
            net(mx.nd.zeros((1,) + net.input_shape))
            prefix = str(folder / network)
            checkpoint.save(net, None, prefix, checkpoint.Sidecar(spec, Preprocess(), epoch=2))
            made[network] = prefix
        return made[network]
    return get


def run_onnx(path, data):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"data": data})


def dims(value_info):
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


@pytest.mark.parametrize("network", ["lightcnn9", "lightcnn29v2"])
def test_onnx_embedding_equals_mxnet_for_any_batch_size(network, random_checkpoint, batch, tmp_path):
    prefix = random_checkpoint(network)
    path = tmp_path / f"{network}.onnx"

    model = export.export_onnx(prefix, str(path))

    assert [(o.domain, o.version) for o in model.opset_import] == [("", 13)]
    assert [(i.name, dims(i)) for i in model.graph.input] == [("data", ["batch", 1, 128, 128])]
    assert [(o.name, dims(o)) for o in model.graph.output] == [("embedding", ["batch", 256])]
    meta = {p.key: p.value for p in model.metadata_props}
    assert (meta["network"], meta["epoch"]) == (network, "2")
    assert json.loads(meta["preprocess"]) == Preprocess().to_dict()
    net, _ = checkpoint.load_model(prefix, 2)
    for data in (batch, batch[:1]):
        expected = net.features(mx.nd.array(data)).asnumpy()
        (embedding,) = run_onnx(path, data)
        assert embedding.shape == (len(data), 256)
        difference = relative_difference(embedding, expected)
        print(f"{network} batch {len(data)}: embedding max relative difference {difference:.2e}")
        assert difference < TOLERANCE
    # the three faces give different embeddings, so agreement is not agreement on a constant
    features = net.features(mx.nd.array(batch)).asnumpy()
    assert features.std(axis=0).max() > 100 * TOLERANCE * np.abs(features).max()


def test_with_logits_through_the_command_line(random_checkpoint, batch, tmp_path, capsys):
    prefix = random_checkpoint("lightcnn9")
    path = tmp_path / "both.onnx"

    assert export_cli.main(["--model-prefix", prefix, "--onnx", str(path), "--with-logits"]) == 0

    assert "opset 13" in capsys.readouterr().out
    model = onnx.load(str(path))
    assert [(o.name, dims(o)) for o in model.graph.output] == [("embedding", ["batch", 256]),
                                                               ("logits", ["batch", NUM_CLASSES])]
    assert not {i.name for i in model.graph.input} & {t.name for t in model.graph.initializer}
    net, _ = checkpoint.load_model(prefix)
    logits, expected = (a.asnumpy() for a in net(mx.nd.array(batch)))
    embedding, onnx_logits = run_onnx(path, batch)
    assert relative_difference(embedding, expected) < TOLERANCE
    assert relative_difference(onnx_logits, logits) < TOLERANCE


def test_without_onnx_the_command_says_how_to_install_it(random_checkpoint, monkeypatch, capsys, tmp_path):
    prefix = random_checkpoint("lightcnn9")
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` now raises ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install onnx==1\.14\.1"):
        export.export_onnx(prefix, str(tmp_path / "m.onnx"))

    assert export_cli.main(["--model-prefix", prefix, "--onnx", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install onnx==1.14.1" in err
    assert not list(tmp_path.iterdir())
