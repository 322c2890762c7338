"""lfw_eval.m in GNU Octave against lightcnn/protocols (python -m lightcnn evaluate): every figure to 1e-6, the
same printed table."""
import os
import pathlib
import shlex
import shutil
import subprocess

import numpy as np
import pytest
import scipy.io

from lightcnn.protocols import lfw_eval, lfw_pairs, report
from lightcnn.protocols.lfw_pairs import Pair
from lightcnn.protocols.similarity import cosine_scores

from helpers.lfw_files import write_image_list, write_pair_label, write_v73_mat

pytestmark = pytest.mark.octave

MATLAB_DIR = pathlib.Path(__file__).resolve().parents[1] / "lfw_verification-matlab"
README = MATLAB_DIR.parent / "README.md"
# How this project runs octave-cli (the README, the demo, the tests): --no-history, or Octave 7 writes the command
# history at exit and, where ~/.local/share is missing, ends every run with an error line (see the last tests).
OCTAVE_ARGS = ("--no-gui", "--no-init-file", "--no-history")
TEXT_KEYS = ("features", "pairs", "pair_format", "excluded", "zero_rows")
N_PEOPLE, PER_PERSON, DIM = 45, 8, 256


def matlab_string(s):
    return "'" + str(s).replace("'", "''") + "'"


def run_octave(octave_cli, cwd, calls, check=True, env=None):
    """Run lfw_eval calls (MATLAB source) in one octave-cli session; returns the CompletedProcess."""
    script = "addpath(%s); %s" % (matlab_string(MATLAB_DIR), " ".join(calls))
    proc = subprocess.run([octave_cli, *OCTAVE_ARGS, "--eval", script], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)
    if check:
        assert proc.returncode == 0, "octave failed:\n%s\n%s" % (proc.stdout, proc.stderr)
    return proc


def lfw_eval_call(*args, pca=0, exclude_missing=False, exclude_zero_rows=False):
    parts = [matlab_string(a) for a in args]
    if pca:
        parts += ["'pca'", str(pca)]
    if exclude_missing:
        parts += ["'exclude_missing'", "true"]
    if exclude_zero_rows:
        parts += ["'exclude_zero_rows'", "true"]
    return "lfw_eval(%s);" % ", ".join(parts)


def python_run(features, pairs, out_dir, **options):
    printed = []
    results = lfw_eval.run(str(features), str(pairs) if pairs else None, str(out_dir), log=printed.append, **options)
    return results, "\n".join(printed)


def printed_report(text):
    """What both print, less the closing 'wrote <json> and <png>' line (its paths differ)."""
    lines = text.rstrip("\n").split("\n")
    assert lines[-1].startswith("wrote ")
    return "\n".join(lines[:-1])


def assert_same_results(python, octave):
    assert sorted(python) == sorted(octave)
    for key in python:
        if key in TEXT_KEYS:
            assert python[key] == octave[key], key
        else:
            a, b = np.asarray(python[key], dtype=float), np.asarray(octave[key], dtype=float)
            assert a.shape == b.shape, key
            np.testing.assert_allclose(b, a, rtol=0, atol=1e-6, err_msg=key)


def compare(octave_cli, folder, features, pairs, **options):
    """lfw_eval and the Python twin on the same files (the same path strings); returns both results."""
    features, pairs = str(folder / features), str(folder / pairs)
    out_octave, out_python = folder / "out_octave", folder / "out_python"
    proc = run_octave(octave_cli, folder, [lfw_eval_call(features, pairs, out_octave, **options)])
    python, printed = python_run(features, pairs, out_python, **options)
    octave = report.read_results_json(out_octave / report.RESULTS_JSON)
    assert_same_results(report.read_results_json(out_python / report.RESULTS_JSON), octave)
    assert printed_report(proc.stdout) == printed_report(printed)
    png = (out_octave / report.ROC_PNG).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 500
    return python, octave, proc


# ---------------------------------------------------------------------------------------------------------------
# synthetic features with ties, written as the extractor writes them

def key(p, i):
    return lfw_pairs.lfw_key("Person_%02d" % p, i)


def save_features(path, keys, data, missing=None):
    label = np.empty((len(keys), 1), dtype=object)
    label[:, 0] = keys
    content = {"data": np.asarray(data, dtype=np.float32), "label": label}
    if missing is not None:
        cell = np.empty((len(missing), 1), dtype=object)
        cell[:, 0] = missing
        content["missing"] = cell
    scipy.io.savemat(str(path), content)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    rng = np.random.default_rng(20)
    keys, rows = [], []
    for p in range(N_PEOPLE):
        centre = rng.normal(size=DIM)
        for i in range(1, PER_PERSON + 1):
            keys.append(key(p, i))
            rows.append(centre + rng.normal(scale=1.6, size=DIM))
    data = np.array(rows, dtype=np.float32)
    # Ties: image 8 of persons 0..9 carries the feature of image 1 of the next person, so the matched pair
    # (p_2, p_8)... is not affected, but (q_1, x) and (p_8, x) score the same for any x.
    for p in range(10):
        data[keys.index(key(p, 8))] = data[keys.index(key(p + 1, 1))]

    pairs = []
    for k in range(10):
        for i in range(15):
            p = (4 * k + i) % N_PEOPLE
            a, b = rng.choice(np.arange(1, PER_PERSON), 2, replace=False)
            pairs.append(Pair(key(p, a), key(p, b), True, k))
        for _ in range(15):
            p, q = rng.choice(N_PEOPLE, 2, replace=False)
            pairs.append(Pair(key(p, rng.integers(1, 8)), key(q, rng.integers(1, 8)), False, k))
    for k in range(10):
        base = 30 * k
        # a cross-class tie: matched (p+1, 1) vs (p+1, 2), mismatched (p, 8) vs (p+1, 2)
        p = k
        pairs[base] = Pair(key(p + 1, 1), key(p + 1, 2), True, k)
        pairs[base + 15] = Pair(key(p, 8), key(p + 1, 2), False, k)
        # a repeated pair in another fold, and a pair listed the other way round
        pairs[base + 1] = pairs[30 * ((k + 3) % 10) + 2]
        pairs[base + 16] = Pair(pairs[base + 17].key2, pairs[base + 17].key1, False, k)
    pairs = [Pair(p.key1, p.key2, p.is_same, i // 30) for i, p in enumerate(pairs)]

    folder = tmp_path_factory.mktemp("lfw_eval")
    save_features(folder / "LFW_features.mat", keys, data)
    lfw_pairs.write_pairs_txt(pairs, folder / "pairs.txt")
    # the ties survive the trip through float32 and both score computations
    scores = cosine_scores(data[[keys.index(p.key1) for p in pairs]], data[[keys.index(p.key2) for p in pairs]])
    same = np.array([p.is_same for p in pairs])
    u, inverse = np.unique(scores, return_inverse=True)
    assert len(u) < len(pairs) - 15
    assert any(len(set(same[inverse == j])) == 2 for j in range(len(u))), "no cross-class tie"
    return {"folder": folder, "keys": keys, "data": data, "pairs": pairs}


def test_view2_pairs_txt(octave_cli, synthetic):
    folder = synthetic["folder"]
    python, octave, _ = compare(octave_cli, folder, "LFW_features.mat", "pairs.txt")
    assert octave["pair_format"] == lfw_pairs.VIEW2 and octave["n_pairs"] == 300 and octave["n_folds"] == 10
    assert len(octave["roc_fpr"]) < 300  # tied scores share ROC points in both


def test_no_arguments_in_a_folder_with_pair_label(octave_cli, synthetic, tmp_path, monkeypatch):
    # the original evaluator's setting: LFW_features.mat and pair.label in the current folder
    (tmp_path / "LFW_features.mat").write_bytes((synthetic["folder"] / "LFW_features.mat").read_bytes())
    write_pair_label(synthetic["pairs"], tmp_path / "pair.label")
    proc = run_octave(octave_cli, tmp_path, ["r = lfw_eval();", "disp(r.n_pairs); disp(r.pair_format);"])
    assert proc.stdout.rstrip().endswith("300\npair.label")
    monkeypatch.chdir(tmp_path)
    python, printed = python_run("LFW_features.mat", None, "out_python")
    octave = report.read_results_json(tmp_path / report.RESULTS_JSON)
    assert_same_results(report.read_results_json(tmp_path / "out_python" / report.RESULTS_JSON), octave)
    assert octave["pairs"] == "pair.label"
    table = proc.stdout[:proc.stdout.index("\nwrote ")]
    assert table == printed_report(printed)
    assert (tmp_path / report.ROC_PNG).stat().st_size > 500
    # the same folds as pairs.txt: the figures equal those of the pairs.txt run
    via_txt, _ = python_run(synthetic["folder"] / "LFW_features.mat", synthetic["folder"] / "pairs.txt",
                            tmp_path / "txt")
    assert via_txt["fold_accuracy"] == python["fold_accuracy"]


def test_view1_with_pca(octave_cli, synthetic, tmp_path):
    # View 1 layout (all matched, then all mismatched): stratified folds, and PCA fitted per fold
    pairs = synthetic["pairs"]
    view1 = [p for p in pairs if p.is_same] + [p for p in pairs if not p.is_same]
    lfw_pairs.write_pairs_txt(view1, tmp_path / "pairsDevTest.txt")
    (tmp_path / "LFW_features.mat").write_bytes((synthetic["folder"] / "LFW_features.mat").read_bytes())
    python, octave, proc = compare(octave_cli, tmp_path, "LFW_features.mat", "pairsDevTest.txt", pca=20)
    assert octave["pair_format"] == lfw_pairs.VIEW1 and octave["pca_dim"] == 20
    assert octave["fold_n_pairs"] == [30] * 10
    assert "PCA to 20 dims" in proc.stdout


def test_exclude_missing(octave_cli, synthetic, tmp_path):
    pairs = list(synthetic["pairs"])
    pairs[33] = Pair(pairs[33].key1, "Ghost/Ghost_0001.jpg", True, 1)  # no such label
    write_pair_label(pairs, tmp_path / "pair.label")
    missing = [key(3, 2), "/lfw_patch/" + key(20, 5)]  # listed by the extractor as having no image
    save_features(tmp_path / "feats.mat", synthetic["keys"], synthetic["data"], missing=missing)
    missing_keys = {"Ghost/Ghost_0001.jpg", key(3, 2), key(20, 5)}
    lost = [p for p in pairs if {p.key1, p.key2} & missing_keys]
    assert len(lost) >= 2

    proc = run_octave(octave_cli, tmp_path, [lfw_eval_call("feats.mat", "pair.label", "out")], check=False)
    assert proc.returncode != 0
    assert "%d of 300 pairs have an image without a feature" % len(lost) in proc.stderr
    assert all(p.key1 in proc.stderr and p.key2 in proc.stderr for p in lost)

    python, octave, proc = compare(octave_cli, tmp_path, "feats.mat", "pair.label", exclude_missing=True)
    assert proc.stdout.startswith("excluded %d of 300 pairs with an image that has no feature:\n" % len(lost))
    assert octave["n_excluded"] == len(lost) and octave["n_pairs"] == 300 - len(lost)
    assert octave["excluded"] == [[p.key1, p.key2] for p in lost]
    assert sum(octave["fold_n_pairs"]) == 300 - len(lost)


def test_zero_rows_reported_kept_and_excluded(octave_cli, synthetic, tmp_path):
    # 12 zero rows (more than the 10 names printed), one of them a key the extractor listed as missing
    keys, data, pairs = synthetic["keys"], synthetic["data"].copy(), synthetic["pairs"]
    zero = [key(p, 3) for p in range(0, 44, 4)] + [key(7, 5)]
    data[[keys.index(k) for k in zero]] = 0
    save_features(tmp_path / "feats.mat", keys, data, missing=[key(7, 5)])
    lfw_pairs.write_pairs_txt(pairs, tmp_path / "pairs.txt")
    zero_keys = set(zero[:-1])
    lost = [p for p in pairs if key(7, 5) in (p.key1, p.key2)]
    on_zero = [p for p in pairs if {p.key1, p.key2} & zero_keys and p not in lost]
    assert len(on_zero) >= 10 and len({p.fold for p in on_zero}) >= 5

    python, octave, proc = compare(octave_cli, tmp_path, "feats.mat", "pairs.txt", exclude_missing=True)
    names = [k for k in keys if k in zero_keys]
    assert octave["zero_rows"] == {"count": 11, "names": names, "n_pairs": len(on_zero), "n_excluded": 0}
    assert octave["n_pairs"] == 300 - len(lost)
    assert ("11 of 360 feature rows have norm 0, used by %d pairs, scored as cosine 0 (leave those pairs out with "
            "--exclude-zero-rows, or 'exclude_zero_rows', true in lfw_eval):\n" % len(on_zero)
            + "".join("  %s\n" % k for k in names[:10]) + "  ... and 1 more\n") in proc.stdout
    assert "  zero rows 11 (feature rows of norm 0), used by %d pairs: kept, scored as cosine 0\n" % len(on_zero) \
        in proc.stdout

    python, octave, proc = compare(octave_cli, tmp_path, "feats.mat", "pairs.txt", exclude_missing=True,
                                   exclude_zero_rows=True)
    assert octave["zero_rows"]["n_excluded"] == len(on_zero)
    assert octave["n_excluded"] == len(lost) + len(on_zero) and octave["n_pairs"] == 300 - len(lost) - len(on_zero)
    assert octave["excluded"] == [[p.key1, p.key2] for p in pairs if p in lost or p in on_zero]
    assert ("excluded %d of 300 pairs with an image whose feature is zero (11 of 360 feature rows have norm 0):\n"
            % len(on_zero)) in proc.stdout
    # and under PCA, where zero rows are centred like any other
    compare(octave_cli, tmp_path, "feats.mat", "pairs.txt", pca=16, exclude_missing=True)


def test_unreadable_or_degenerate_feature_files_are_named(octave_cli, synthetic, tmp_path):
    keys, data = synthetic["keys"], synthetic["data"]
    write_v73_mat(tmp_path / "v73.mat")
    (tmp_path / "garbage.mat").write_bytes(np.random.default_rng(5).bytes(4096))
    whole = (synthetic["folder"] / "LFW_features.mat").read_bytes()
    (tmp_path / "cut.mat").write_bytes(whole[:len(whole) // 2])
    save_features(tmp_path / "zero.mat", keys, np.zeros_like(data))
    save_features(tmp_path / "same.mat", keys, np.tile(data[:1], (len(keys), 1)))
    expected = {"v73.mat": "v73.mat: a MATLAB -v7.3 (HDF5) file, which Octave cannot read: save it as -v7 (in "
                           "MATLAB: s = load(FILE); save(FILE, '-struct', 's', '-v7'))",
                "garbage.mat": "garbage.mat: not a readable MATLAB .mat file (load: ",
                "cut.mat": "cut.mat: not a readable MATLAB .mat file (load: ",
                "zero.mat": "zero.mat: all 360 rows of 'data' are zero: these are not features (every pair would "
                            "score the same)",
                "same.mat": "same.mat: all 360 rows of 'data' are the same: these are not features (every pair "
                            "would score the same)"}
    calls = ["try\n lfw_eval(%s, %s, 'out'); disp('accepted');\ncatch err\n disp(err.message);\nend\n"
             % (matlab_string(name), matlab_string(synthetic["folder"] / "pairs.txt")) for name in expected]
    proc = run_octave(octave_cli, tmp_path, calls)
    assert "HDF5" not in proc.stderr  # the HDF5 library's pages of diagnostics, before the pre-check
    messages = proc.stdout.strip().split("\n")
    assert len(messages) == len(expected), proc.stdout
    for message, start in zip(messages, expected.values()):
        assert message.startswith(start), message
    assert not (tmp_path / "out").exists()


def test_real_pair_files(octave_cli, shared_data, tmp_path):
    # random features for the images present in lfw_gray144: 395 of pairs.txt's pairs lack one
    keys = write_image_list(shared_data / "lfw_gray144", tmp_path / "images.txt")
    rng = np.random.default_rng(3)
    save_features(tmp_path / "f.mat", keys, rng.normal(size=(len(keys), 8)))
    lfw_dir = shared_data / "lfw"
    calls = [lfw_eval_call(tmp_path / "f.mat", lfw_dir / name, "out_%d" % i, exclude_missing=True)
             for i, name in enumerate(["pairs.txt", "pair.label", "pairsDevTest.txt"])]
    run_octave(octave_cli, tmp_path, calls)
    for i, name in enumerate(["pairs.txt", "pair.label", "pairsDevTest.txt"]):
        python, _ = python_run(tmp_path / "f.mat", lfw_dir / name, tmp_path / ("py_%d" % i), exclude_missing=True)
        octave = report.read_results_json(tmp_path / ("out_%d" % i) / report.RESULTS_JSON)
        assert_same_results(report.read_results_json(tmp_path / ("py_%d" % i) / report.RESULTS_JSON), octave)
        if name != "pairsDevTest.txt":
            assert octave["n_listed"] == 6000 and octave["n_pairs"] == 5605 and octave["n_excluded"] == 395


def test_malformed_pair_files_name_the_line(octave_cli, tmp_path):
    files = {
        "view2.txt": ("2\t1\nA\t1\t2\nA\t1\tB\t1\nC\t1\tD\t1\nC\t1\t2\n", 4),
        "view1.txt": ("1\nA\t1\t2\n\nA\t0\tB\t1\n", 4),
        "pair.label": ("1 A/A_0001.jpg A/A_0002.jpg\r\n2 A/A_0001.jpg B/B_0001.jpg\r\n", 2),
        "keys.label": ("1 A/A_0001.jpg A/A_0002.jpg\n0 A/A_0001.jpg B_0001.jpg\n", 2),
    }
    save_features(tmp_path / "f.mat", ["A/A_0001.jpg", "A/A_0002.jpg"], np.eye(2, 3))
    calls = []
    for name, (text, _) in files.items():
        (tmp_path / name).write_bytes(text.encode())
        with pytest.raises(lfw_pairs.PairFileError):  # the Python reader refuses them too
            lfw_pairs.read_pairs(tmp_path / name)
        # the pair reader is private to lfw_eval (lfw_verification-matlab/private/): reached through it
        calls.append("try\n lfw_eval('f.mat', %s, 'out'); disp('accepted');\ncatch err\n disp(err.message);\nend\n"
                     % matlab_string(name))
    proc = run_octave(octave_cli, tmp_path, calls)
    messages = proc.stdout.strip().split("\n")
    assert len(messages) == len(files)
    for message, (name, (_, line)) in zip(messages, files.items()):
        assert message.startswith("%s:%d: " % (name, line)), message


# ---------------------------------------------------------------------------------------------------------------
# a clean exit: Octave 7 saves its command history at exit, --eval runs included, in ~/.local/share/octave/history
# (under $XDG_DATA_HOME when set); where ~/.local/share does not exist it cannot create that folder and every run
# ends with "error: ignoring const execution_exception& while preparing to exit" on stderr, success or not

def fresh_home(tmp_path):
    """The environment of an account whose home has no ~/.local/share (a new user, a container, CI)."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {k: val for k, val in os.environ.items() if k not in ("XDG_DATA_HOME", "OCTAVE_HISTFILE")}
    env["HOME"] = str(home)
    return env


def test_runs_end_without_an_exit_error(octave_cli, synthetic, tmp_path):
    env = fresh_home(tmp_path)
    features = synthetic["folder"] / "LFW_features.mat"
    ok = run_octave(octave_cli, tmp_path, [lfw_eval_call(features, synthetic["folder"] / "pairs.txt", "out")],
                    env=env)
    assert ok.stdout.rstrip().endswith("wrote out/lfw_results.json and out/lfw_roc.png")
    assert "execution_exception" not in ok.stderr
    assert not [line for line in ok.stderr.splitlines() if line.startswith("error:")], ok.stderr

    (tmp_path / "bad.txt").write_text("2\t1\nA\t1\t2\nA\t1\tB\t1\nC\t1\tD\t1\nC\t1\t2\n")
    bad = run_octave(octave_cli, tmp_path, [lfw_eval_call(features, "bad.txt", "out_bad")], check=False, env=env)
    assert bad.returncode != 0
    assert "error: bad.txt:4: expected a matched pair 'Name i j', got 'C\t1\tD\t1'" in bad.stderr
    assert "execution_exception" not in bad.stderr
    assert not (tmp_path / "out_bad").exists()


def readme_lfw_commands():
    """The lines of README.md's 'Evaluate on LFW' code block that run lfw_eval: (MATLAB/Octave prompt, shell)."""
    section = README.read_text().split("\n## Evaluate on LFW\n", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    prompt = [line for line in block.splitlines() if line.startswith("lfw_eval")]
    shell = [line for line in block.splitlines() if line.startswith("octave-cli ")]
    assert len(prompt) == 1 and len(shell) == 1, block
    return prompt[0], shell[0]


def test_readme_octave_lines(octave_cli, synthetic, tmp_path, monkeypatch):
    # as the README says: in lfw_verification-matlab/ (a copy) with LFW_features.mat and pairs.txt beside it
    folder = tmp_path / "lfw_verification-matlab"
    shutil.copytree(MATLAB_DIR, folder)
    for name in ("LFW_features.mat", "pairs.txt"):
        shutil.copy(synthetic["folder"] / name, folder / name)
    monkeypatch.chdir(folder)
    _, printed = python_run("LFW_features.mat", "pairs.txt", "results")
    prompt, shell = readme_lfw_commands()
    argv = shlex.split(shell)
    env = fresh_home(tmp_path)
    runs = [subprocess.run([octave_cli, *argv[1:]], cwd=folder, env=env, capture_output=True, text=True,
                           timeout=120)]
    # the prompt line typed into Octave (run here through --eval, as Octave's prompt would run it)
    runs.append(subprocess.run([octave_cli, *OCTAVE_ARGS, "--eval", prompt], cwd=folder, env=env,
                               capture_output=True, text=True, timeout=120))
    for line, proc in zip((shell, prompt), runs):
        assert proc.returncode == 0, (line, proc.stderr)
        assert "execution_exception" not in proc.stderr, line
        # the table and the closing line, not also the returned struct ('ans = ...', thousands of lines)
        assert printed_report(proc.stdout) == printed_report(printed), line
