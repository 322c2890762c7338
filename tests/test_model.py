"""The MFM blocks, the four networks, the initializer and the export round trip (fast, CPU)."""
import math
import subprocess
import sys

import numpy as np
import pytest

import mxnet as mx
from mxnet import gluon

from lightcnn import init
from lightcnn.images import Preprocess
from lightcnn.model import Embedding, MFMConv, MFMDense, ModelSpec, get_model, max_feature_map, model_names
from lightcnn.networks import CONFIGS

NUM_CLASSES = 10


def _random(shape, seed=0):
    return mx.nd.array(np.random.RandomState(seed).standard_normal(shape).astype(np.float32))


@pytest.fixture(scope="module")
def nets():
    """One initialised instance of every registered network, shared by the tests below (building them is the
    slow part)."""
    built = {}
    for name in model_names():
        mx.random.seed(0)
        net = get_model(name, NUM_CLASSES)
        net.initialize(init.xavier())
        net(mx.nd.zeros((1, 1, 128, 128)))
        built[name] = net
    return built


# --- MFM ---------------------------------------------------------------------------------------------------------

def test_mfm_2_1_is_elementwise_max_of_halves():
    x = _random((3, 8, 5, 5))
    out = max_feature_map(mx.nd, x, "2/1").asnumpy()
    a, b = x.asnumpy()[:, :4], x.asnumpy()[:, 4:]
    assert out.shape == (3, 4, 5, 5)
    np.testing.assert_array_equal(out, np.maximum(a, b))


def test_mfm_3_2_keeps_max_and_median_of_three_slices():
    x = _random((2, 12, 4, 4), seed=1)
    out = max_feature_map(mx.nd, x, "3/2").asnumpy()
    slices = np.stack(np.split(x.asnumpy(), 3, axis=1))  # (3, N, 4, H, W)
    assert out.shape == (2, 8, 4, 4)
    np.testing.assert_array_equal(out[:, :4], slices.max(axis=0))
    np.testing.assert_array_equal(out[:, 4:], np.median(slices, axis=0))


@pytest.mark.parametrize("mfm_type, conv_channels", [("2/1", 32), ("3/2", 24)])
def test_mfm_conv_and_dense_set_channels(mfm_type, conv_channels):
    conv = MFMConv(16, 3, padding=1, mfm_type=mfm_type)
    dense = MFMDense(16, mfm_type=mfm_type)
    for block in (conv, dense):
        block.initialize()
    assert conv(_random((2, 5, 6, 6))).shape == (2, 16, 6, 6)
    assert conv.conv.weight.shape[0] == conv_channels
    assert dense(_random((2, 5, 6, 6))).shape == (2, 16)
    assert dense.fc.weight.shape[0] == conv_channels


def test_mfm_3_2_needs_even_channels():
    with pytest.raises(ValueError, match="even number"):
        MFMConv(15, 3, mfm_type="3/2")


def test_pool_before_mfm_equals_mfm_before_pool():
    """Max-pooling commutes with the element-wise max, so pooling the 2C conv output first is the same function."""
    x = _random((2, 3, 17, 17), seed=2)  # odd size: exercises the ceil-mode edge windows too
    fast = MFMConv(8, 3, padding=1, pool="max", pool_first=True)
    slow = MFMConv(8, 3, padding=1, pool="max", pool_first=False)
    fast.initialize(init.xavier())
    slow.initialize()
    fast(x)
    slow(x)
    slow.conv.weight.set_data(fast.conv.weight.data())
    slow.conv.bias.set_data(fast.conv.bias.data())
    out_fast, out_slow = fast(x).asnumpy(), slow(x).asnumpy()
    assert out_fast.shape == (2, 8, 9, 9)
    np.testing.assert_array_equal(out_fast, out_slow)


@pytest.mark.parametrize("name", ["lightcnn9", "lightcnn29"])
def test_whole_network_pool_order_is_identical(nets, name):
    slow = get_model(name, NUM_CLASSES, pool_first=False)
    slow.initialize()
    x = _random((2, 1, 128, 128), seed=3)
    slow(x)
    for p_slow, p_fast in zip(slow.collect_params().values(), nets[name].collect_params().values()):
        p_slow.set_data(p_fast.data())
    np.testing.assert_allclose(slow.features(x).asnumpy(), nets[name].features(x).asnumpy(), rtol=1e-5, atol=1e-5)


# --- the networks ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", model_names())
def test_outputs_shapes_and_hybridized_equals_imperative(nets, name):
    net = nets[name]
    x = _random((2, 1, 128, 128), seed=4)
    logits, emb = net(x)
    assert logits.shape == (2, NUM_CLASSES) and emb.shape == (2, 256)
    np.testing.assert_array_equal(net.features(x).asnumpy(), emb.asnumpy())
    net.hybridize()
    h_logits, h_emb = net(x)
    net.hybridize(active=False)
    np.testing.assert_allclose(h_logits.asnumpy(), logits.asnumpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(h_emb.asnumpy(), emb.asnumpy(), rtol=1e-5, atol=1e-5)


def _conv(cin, cout, k):
    """Parameters of a conv producing cout channels (weights + biases)."""
    return cin * cout * k * k + cout


def _mfm_conv(cin, cout, k):  # MFM 2/1: the conv makes 2*cout channels
    return _conv(cin, 2 * cout, k)


def _group(cin, cout):
    return _mfm_conv(cin, cin, 1) + _mfm_conv(cin, cout, 3)


def _res(c):
    return 2 * _mfm_conv(c, c, 3)


# Hand derivation from REFERENCE.md's tables (input 1x128x128, C classes):
#   LightCNN-4:  convs 1->96 9x9, 48->192 5x5, 96->256 5x5, 128->384 4x4; 128->120->60->56->28->24->12->9->5,
#                so fc 5*5*192 -> 512 (MFM 256); classifier 256*C + C.
#   LightCNN-9:  MFM 5x5 1->48, groups 48->96, 96->192, 192->128, 128->128; fc 8*8*128 -> 512; classifier.
#   LightCNN-29: the 9's convs plus 1, 2, 3, 4 resblocks of 48, 96, 192, 128 channels.
#   LightCNN-29v2: same trunk; plain fc 8192 -> 256 with bias; classifier without bias.
C = NUM_CLASSES
TRUNK_9 = _mfm_conv(1, 48, 5) + _group(48, 96) + _group(96, 192) + _group(192, 128) + _group(128, 128)
TRUNK_29 = TRUNK_9 + _res(48) + 2 * _res(96) + 3 * _res(192) + 4 * _res(128)
EXPECTED_PARAMS = {
    "lightcnn4": (_mfm_conv(1, 48, 9) + _mfm_conv(48, 96, 5) + _mfm_conv(96, 128, 5) + _mfm_conv(128, 192, 4)
                  + (5 * 5 * 192 * 512 + 512) + 256 * C + C),
    "lightcnn9": TRUNK_9 + (8192 * 512 + 512) + 256 * C + C,
    "lightcnn29": TRUNK_29 + (8192 * 512 + 512) + 256 * C + C,
    "lightcnn29v2": TRUNK_29 + (8192 * 256 + 256) + 256 * C,
}


@pytest.mark.parametrize("name", model_names())
def test_parameter_counts_match_hand_derivation(nets, name):
    count = sum(p.data().size for p in nets[name].collect_params().values())
    assert count == EXPECTED_PARAMS[name]


def test_published_sizes():
    """REFERENCE.md: LightCNN-4 about 4M, LightCNN-9 5.5M, LightCNN-29 12.6M (the paper's figure) + classifier."""
    classifier = 256 * C + C
    assert round((EXPECTED_PARAMS["lightcnn4"] - classifier) / 1e6) == 4
    assert round((EXPECTED_PARAMS["lightcnn9"] - classifier) / 1e5) == 55
    assert round((EXPECTED_PARAMS["lightcnn29"] - classifier) / 1e5) == 126


def test_dropout_rates_and_29v2_classifier_has_no_bias(nets):
    assert nets["lightcnn4"].dropout._rate == 0.7
    assert nets["lightcnn9"].dropout._rate == 0.5
    assert nets["lightcnn29v2"].classifier.bias is None
    assert nets["lightcnn29"].classifier.bias is not None


def test_each_network_config_describes_the_built_network(nets):
    """The per-network facts (lightcnn.networks) are what get_model builds, and reading them loads no MXNet."""
    code = "import sys, lightcnn.networks; sys.exit('mxnet' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
    assert list(CONFIGS) == model_names()
    for name, config in CONFIGS.items():
        net = nets[name]
        assert net.input_shape == config.input_shape == (1, config.input_size, config.input_size)
        assert net.dropout._rate == config.dropout
        assert (net.classifier.bias is not None) == config.classifier_bias
        assert isinstance(net.embedding.head, MFMDense) == config.mfm_head
        assert net.features(mx.nd.zeros((1,) + config.input_shape)).shape == (1, config.embedding_size)
        assert config.preprocess == Preprocess() and config.preprocess.data_shape == config.input_shape


def test_embedding_lists_its_blocks_and_mfm_convs_say_what_they_compute(nets):
    """What lightcnn.quantize reads of a network: its blocks in forward order, and which MFM convs are a max of two
    halves (then at most a max pool)."""
    for name, net in nets.items():
        blocks = net.embedding.blocks()
        assert isinstance(net.embedding, Embedding) and blocks[-1] is net.embedding.head
        assert len(blocks) == len(net.embedding.trunk) + 1
        first = blocks[0]
        assert isinstance(first, MFMConv) and first.mfm_type == "2/1"
        assert first.pool == CONFIGS[name].pool and first.max_of_halves == (CONFIGS[name].pool == "max")
    assert not MFMConv(4, 3, mfm_type="3/2").max_of_halves


def test_mfm_3_2_option_builds_every_network():
    for name in model_names():
        net = get_model(name, 3, mfm_type="3/2")
        net.initialize()
        logits, emb = net(mx.nd.zeros((1, 1, 128, 128)))
        assert logits.shape == (1, 3) and emb.shape == (1, 256)


# --- initializer -------------------------------------------------------------------------------------------------

def xavier_bound(shape, factor_type="avg", magnitude=3):
    """The uniform Xavier limit sqrt(magnitude / fan) for a weight of this shape."""
    receptive_field = math.prod(shape[2:])
    fan_in, fan_out = shape[1] * receptive_field, shape[0] * receptive_field
    return (magnitude / {"avg": (fan_in + fan_out) / 2.0, "in": fan_in, "out": fan_out}[factor_type]) ** 0.5


@pytest.mark.parametrize("factor_type, magnitude", [("avg", 3), ("in", 3), ("out", 2)])
def test_initializer_biases_and_xavier_bounds(factor_type, magnitude):
    mx.random.seed(1)
    net = get_model("lightcnn9", NUM_CLASSES)
    net.initialize(init.xavier(factor_type=factor_type, magnitude=magnitude))
    net(mx.nd.zeros((1, 1, 128, 128)))
    for name, param in net.collect_params().items():
        data = param.data().asnumpy()
        if name.endswith("bias"):
            np.testing.assert_array_equal(data, np.full_like(data, 0.1))
        else:
            bound = xavier_bound(data.shape, factor_type, magnitude)
            assert np.abs(data).max() <= bound * (1 + 1e-6)
            assert np.abs(data).max() > 0.9 * bound  # uniform over the whole range, not a narrower one


def test_initializer_rejects_bad_options():
    with pytest.raises(ValueError, match="factor type"):
        init.xavier(factor_type="fan")
    with pytest.raises(ValueError, match="magnitude"):
        init.xavier(magnitude=0)


@pytest.mark.parametrize("name", model_names())
def test_any_initializer_works_and_biases_start_at_the_recipes(name):
    """The layers own their 0.1 biases, so Gluon users' first move works (it failed with a package-wide bias
    initializer: "Xavier initializer cannot be applied to vector ..._bias")."""
    net = get_model(name, NUM_CLASSES)
    net.initialize(mx.init.Xavier())
    net(mx.nd.zeros((1, 1, 128, 128)))
    biases = {k: p.data().asnumpy() for k, p in net.collect_params().items() if k.endswith("bias")}
    assert biases and all(np.all(b == np.float32(0.1)) for b in biases.values())
    weights = [p.data().asnumpy() for k, p in net.collect_params().items() if k.endswith("weight")]
    assert all(w.std() > 0 for w in weights)


def test_model_spec_builds_its_network_and_round_trips():
    spec = ModelSpec("LightCNN-9", 7, mfm_type="3/2", dropout=0.2)
    assert spec.network == "lightcnn9" and ModelSpec.from_dict(spec.to_dict()) == spec
    net = spec.build()
    assert net.num_classes == 7 and net.dropout._rate == 0.2
    for bad, message in (({"num_classes": 0}, "positive integer"), ({"mfm_type": "4/3"}, "MFM type"),
                         ({"dropout": 1.5}, "dropout"), ({"network": "vgg"}, "valid names")):
        with pytest.raises(ValueError, match=message):
            ModelSpec(**{"network": "lightcnn9", "num_classes": 3, **bad})


# --- export ------------------------------------------------------------------------------------------------------

def test_export_round_trip_gives_identical_features(nets, tmp_path):
    net = nets["lightcnn9"]
    x = _random((2, 1, 128, 128), seed=5)
    net.hybridize()
    logits, emb = net(x)
    prefix = str(tmp_path / "lightcnn9")
    net.export(prefix, epoch=3)
    net.hybridize(active=False)
    imported = gluon.SymbolBlock.imports(prefix + "-symbol.json", ["data"], prefix + "-0003.params")
    i_logits, i_emb = imported(x)
    np.testing.assert_array_equal(i_emb.asnumpy(), emb.asnumpy())
    np.testing.assert_array_equal(i_logits.asnumpy(), logits.asnumpy())
    # the exported weights also load by name into a freshly built network
    fresh = get_model("lightcnn9", NUM_CLASSES)
    fresh.collect_params().load(prefix + "-0003.params", ctx=mx.cpu())
    np.testing.assert_array_equal(fresh.features(x).asnumpy(), emb.asnumpy())


# --- bad input ---------------------------------------------------------------------------------------------------

def test_unknown_network_lists_valid_names():
    with pytest.raises(ValueError, match="lightcnn4, lightcnn9, lightcnn29, lightcnn29v2"):
        get_model("resnet50", 10)


@pytest.mark.parametrize("num_classes", [0, -3, 2.5, "10"])
def test_non_positive_num_classes(num_classes):
    with pytest.raises(ValueError, match="num_classes must be a positive integer"):
        get_model("lightcnn9", num_classes)


def test_unknown_mfm_type():
    with pytest.raises(ValueError, match="MFM type"):
        get_model("lightcnn9", 10, mfm_type="4/3")


@pytest.mark.parametrize("shape, message", [((2, 3, 128, 128), "1 input channel"),
                                            ((2, 1, 112, 92), "128x128 inputs"),
                                            ((1, 128, 128), "4-d batch")])
def test_wrong_input_shape(nets, shape, message):
    for call in (nets["lightcnn9"], nets["lightcnn9"].features):
        with pytest.raises(ValueError, match=message):
            call(mx.nd.zeros(shape))


def test_names_are_fixed_by_network():
    """Parameter names do not depend on how many networks the process built before."""
    first = list(get_model("lightcnn9", 3).collect_params().keys())
    second = list(get_model("lightcnn9", 3).collect_params().keys())
    assert first == second and first[0].startswith("lightcnn9_")
