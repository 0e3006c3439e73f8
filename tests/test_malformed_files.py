"""A corpus of malformed files for fc.load, load_state_dict and the command line: each one gives a
one-line error naming the file (a ValueError, or exit code 2 from the CLI), none a traceback, none
a hang, and nothing ever suggests unpickling."""
import json
import os
import sys
import zipfile

import numpy as np
import pytest
from _subprocess import run

import fastconv as fc
from fastconv import cli, nn

TINY_ARCH = "INPUT -> POOL(avg, k=4, s=4) -> FC"


def assert_one_line(message: str, must_name: str):
    assert "\n" not in message.strip(), message
    assert must_name in message, (must_name, message)
    assert "Traceback" not in message and "allow_pickle" not in message and "unpickl" not in message.lower(), message


# ---- building blocks ----------------------------------------------------------------------------

def npy(header: str, data: bytes = b"") -> bytes:
    """An .npy member with a hand-written header dictionary (format 1.0)."""
    h = header.encode("latin1")
    h += b" " * (63 - (10 + len(h)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(h).to_bytes(2, "little") + h + data


def npz(path, members, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def manifest_member(manifest) -> bytes:
    text = manifest if isinstance(manifest, (str, bytes)) else json.dumps(manifest)
    raw = text.encode() if isinstance(text, str) else text
    return npy(f"{{'descr': '|u1', 'fortran_order': False, 'shape': ({len(raw)},), }}", raw)


def array_member(arr) -> bytes:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(arr))
    return buf.getvalue()


def fastconv_file(path, root, arrays=None, version=2, raw_manifest=None):
    members = {f"{k}.npy": array_member(v) for k, v in (arrays or {}).items()}
    manifest = raw_manifest if raw_manifest is not None else {"format": "fastconv", "version": version, "root": root}
    members["__fastconv_meta__.npy"] = manifest_member(manifest)
    npz(path, members)


def patch_central_directory(path, offset, value: bytes):
    """Overwrite bytes at ``offset`` of the first central-directory entry."""
    data = bytearray(path.read_bytes())
    at = data.index(b"PK\x01\x02") + offset
    data[at:at + len(value)] = value
    path.write_bytes(bytes(data))


def nested(depth) -> str:
    """A manifest whose root is a list in a list ... ``depth`` times (as JSON text)."""
    root = '{"t": "list", "items": [' * depth + '{"t": "plain", "v": 1}' + "]}" * depth
    return '{"format": "fastconv", "version": 1, "root": ' + root + "}"


ARRAY = {"t": "array", "entry": "w"}
GOOD_W = {"w": np.ones(3, np.float32)}


def corpus(tmp_path):
    """(file, what the error must mention) for files fc.load must refuse."""
    cases = []

    def case(name, make, needle=None):
        p = tmp_path / name
        make(p)
        cases.append((p, needle))

    # npz members that lie about their contents
    case("shape_bomb.npz", lambda p: npz(p, {"w.npy": npy(
        "{'descr': '<f8', 'fortran_order': False, 'shape': (17179869184,), }", b"\0" * 16)}),
        "declares shape (17179869184,)")
    case("object.npz", lambda p: npz(p, {"w.npy": npy("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }",
                                                      b"\x80\x04N.")}), "pickled object array")
    case("header_garbage.npz", lambda p: npz(p, {"w.npy": npy("{'descr': <f4, 'shape': (3,)}", b"\0" * 12)}),
         "no valid .npy header")
    case("header_nested.npz", lambda p: npz(p, {"w.npy": npy("(" * 3000 + ")" * 3000, b"")}),
         "no valid .npy header")
    case("header_list.npz", lambda p: npz(p, {"w.npy": npy("[1, 2, 3]", b"")}), "no valid .npy header")
    case("negative_shape.npz", lambda p: npz(p, {"w.npy": npy(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", b"")}), "w")
    case("float_shape.npz", lambda p: npz(p, {"w.npy": npy(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1.5,), }", b"")}), "w")
    case("short_data.npz", lambda p: npz(p, {"w.npy": npy(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", b"\0" * 12)}), "holds 12 bytes")
    case("long_data.npz", lambda p: npz(p, {"w.npy": npy(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", b"\0" * 12)}), "holds 12 bytes")
    case("bad_magic.npz", lambda p: npz(p, {"w.npy": b"\x93NUMPY\x09\x00 junk"}), "w")
    case("not_npy.npz", lambda p: npz(p, {"w.npy": b"plain bytes"}), "no valid .npy header")
    case("bz2_member.npz", lambda p: npz(p, {"w.npy": array_member(np.ones(3))}, zipfile.ZIP_BZIP2),
         "compression method 12")
    case("duplicate.npz", lambda p: npz(p, {"w.npy": array_member(np.ones(3))}) or _append(p, "w.npy"),
         "appears twice")

    def stored_size_lie(p):
        npz(p, {"w.npy": array_member(np.ones(4))})
        patch_central_directory(p, 24, (10 ** 9).to_bytes(4, "little"))  # uncompressed size

    def deflate_bomb(p):
        npz(p, {"w.npy": array_member(np.zeros(1000))}, zipfile.ZIP_DEFLATED)
        patch_central_directory(p, 24, (4 * 10 ** 9).to_bytes(4, "little"))

    def encrypted(p):
        npz(p, {"w.npy": array_member(np.ones(2))})
        patch_central_directory(p, 8, b"\x01\x00")  # general-purpose flag: encrypted

    case("size_lie.npz", stored_size_lie, "w")
    case("deflate_bomb.npz", deflate_bomb, "more than deflate can expand to")
    case("encrypted.npz", encrypted, "entry 'w' is encrypted")
    # manifests that are not what they should be
    case("manifest_list.npz", lambda p: fastconv_file(p, None, raw_manifest="[1, 2]"), "no 'root'")
    case("manifest_deep_json.npz", lambda p: fastconv_file(p, None, raw_manifest="[" * 100000 + "]" * 100000),
         "nested too deeply")
    case("manifest_deep_kinds.npz", lambda p: fastconv_file(p, None, raw_manifest=nested(300)),
         "nested more than 200 levels deep")
    case("manifest_deeper.npz", lambda p: fastconv_file(p, None, raw_manifest=nested(2000)), "nested too deeply")
    case("manifest_utf8.npz", lambda p: fastconv_file(p, None, raw_manifest=b"\xff\xfe{}"), "unreadable")
    case("manifest_control.npz", lambda p: fastconv_file(p, None, raw_manifest='{"root": "a\x01b"}'), "unreadable")
    case("manifest_huge_int.npz", lambda p: fastconv_file(p, None, raw_manifest='{"v": ' + "9" * 5000 + "}"),
         "unreadable")
    case("version_99.npz", lambda p: fastconv_file(p, ARRAY, GOOD_W, version=99), "format version 99")
    case("version_text.npz", lambda p: fastconv_file(p, ARRAY, GOOD_W, version="1"), "format version '1'")
    case("unknown_kind.npz", lambda p: fastconv_file(p, {"t": "pickle", "v": "x"}), "unknown kind 'pickle'")
    case("missing_entry.npz", lambda p: fastconv_file(p, {"t": "array", "entry": "absent"}), "member 'absent'")
    case("entry_not_text.npz", lambda p: fastconv_file(p, {"t": "array", "entry": [1]}, GOOD_W), "not a string")
    case("items_not_list.npz", lambda p: fastconv_file(p, {"t": "dict", "items": {"a": 1}}), "not a list")
    case("bad_pair.npz", lambda p: fastconv_file(p, {"t": "dict", "items": [["a"]]}), "pair")
    case("bad_key.npz", lambda p: fastconv_file(p, {"t": "dict", "items": [[{"int": True}, ARRAY]]}, GOOD_W), "key")
    case("list_key.npz", lambda p: fastconv_file(
        p, {"t": "dict", "items": [[{"key": {"t": "list", "items": []}}, ARRAY]]}, GOOD_W), "not hashable")
    case("float_text.npz", lambda p: fastconv_file(p, {"t": "float", "v": "one"}), "not a number")
    case("plain_list.npz", lambda p: fastconv_file(p, {"t": "plain", "v": [1, 2]}), "plain value")
    case("not_a_description.npz", lambda p: fastconv_file(p, [1, 2]), "description")
    case("tensor_flags.npz", lambda p: fastconv_file(p, {"t": "tensor", "entry": "w", "requires_grad": "yes"},
                                                     GOOD_W), "flags")
    case("tensor_of_text.npz", lambda p: fastconv_file(p, {"t": "tensor", "entry": "w"}, {"w": np.array(["a"])}),
         "cannot be rebuilt")
    case("int_requires_grad.npz", lambda p: fastconv_file(
        p, {"t": "tensor", "entry": "w", "requires_grad": True}, {"w": np.arange(3)}), "cannot be rebuilt")
    case("scalar_shape.npz", lambda p: fastconv_file(p, {"t": "npscalar", "entry": "w"}, GOOD_W), "shape (3,)")
    case("bytes_dtype.npz", lambda p: fastconv_file(p, {"t": "bytes", "entry": "w"}, GOOD_W), "bytes member")
    case("object_dtype.npz", lambda p: fastconv_file(p, {"t": "dtype", "v": "|O"}), "object dtype")
    case("bad_dtype.npz", lambda p: fastconv_file(p, {"t": "dtype", "v": "float99"}), "not a numpy dtype")
    case("manifest_floats.npz", lambda p: npz(p, {"__fastconv_meta__.npy": array_member(np.ones(4))}),
         "not uint8 bytes")
    return cases


def _append(path, name):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with zipfile.ZipFile(path, "a") as zf:
            zf.writestr(name, array_member(np.zeros(3)))


def truncations_and_flips(tmp_path):
    """A valid checkpoint cut short at many places and with single bytes flipped."""
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.Flatten(), nn.Linear(8, 3))
    good = tmp_path / "good.npz"
    fc.save({"model": model.state_dict(), "epoch": 3, "t": fc.tensor([1.0])}, good)
    data = good.read_bytes()
    rng = np.random.default_rng(0)
    cuts, flips = [], []
    for i, cut in enumerate(sorted(set(np.linspace(1, len(data) - 1, 24).astype(int)))):
        p = tmp_path / f"cut{i}.npz"
        p.write_bytes(data[:cut])
        cuts.append(p)
    for i, at in enumerate(rng.integers(0, len(data), 40)):
        p = tmp_path / f"flip{i}.npz"
        flipped = bytearray(data)
        flipped[at] ^= 0xFF
        p.write_bytes(bytes(flipped))
        flips.append(p)
    return cuts, flips


# ---- fc.load ------------------------------------------------------------------------------------

def test_malformed_files_are_one_line_errors(tmp_path):
    cases = corpus(tmp_path)
    assert len(cases) >= 40
    for path, needle in cases:
        with pytest.raises(ValueError) as info:
            fc.load(path)
        assert_one_line(str(info.value), str(path))
        assert needle in str(info.value), (path.name, str(info.value))


def test_truncated_and_bit_flipped_checkpoints(tmp_path):
    cuts, flips = truncations_and_flips(tmp_path)
    for path in cuts:
        with pytest.raises(ValueError) as info:
            fc.load(path)
        assert_one_line(str(info.value), str(path))
    failed = 0
    for path in flips:  # a flip in an unchecked byte (e.g. a timestamp) may leave the file readable
        try:
            fc.load(path)
        except ValueError as exc:
            assert_one_line(str(exc), str(path))
            failed += 1
    assert failed > len(flips) // 2


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "model.npz"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="is not a regular file"):
        fc.load(fifo)


# ---- load_state_dict ----------------------------------------------------------------------------

def small_model():
    fc.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))


BAD_STATE_DICTS = {
    "wrong shape": lambda sd: dict(sd, **{"0.weight": np.ones((3, 2), np.float32)}),
    "string": lambda sd: dict(sd, **{"0.bias": "zeros"}),
    "None": lambda sd: dict(sd, **{"0.bias": None}),
    "nested dict": lambda sd: dict(sd, **{"0.bias": {"data": [0, 0]}}),
    "object array": lambda sd: dict(sd, **{"0.bias": np.array([object(), 1], dtype=object)}),
    "complex": lambda sd: dict(sd, **{"0.bias": np.ones(2, np.complex64)}),
    "ragged": lambda sd: dict(sd, **{"0.weight": [[1, 2, 3], [4]]}),
    "tensor of wrong shape": lambda sd: dict(sd, **{"1.running_mean": fc.ones(3)}),
    "missing": lambda sd: {k: v for k, v in sd.items() if k != "1.weight"},
    "unexpected": lambda sd: dict(sd, extra=np.ones(1)),
    "many problems": lambda sd: {"0.weight": "x", "bogus": 1},
    "list": lambda sd: list(sd.values()),
    "string state": lambda sd: "model.npz",
    "no state": lambda sd: None,
}


@pytest.mark.parametrize("problem", list(BAD_STATE_DICTS))
def test_load_state_dict_errors_are_one_line_and_change_nothing(problem):
    model = small_model()
    before = {k: np.array(v, copy=True) for k, v in model.state_dict().items()}
    bad = BAD_STATE_DICTS[problem](model.state_dict())
    with pytest.raises((ValueError, TypeError)) as info:
        model.load_state_dict(bad)
    assert_one_line(str(info.value), "load_state_dict")
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(np.asarray(v), before[k])


def test_load_state_dict_of_foreign_files_never_gets_their_members(tmp_path):
    """fc.load of a foreign file raises before load_state_dict could list its members as keys."""
    with zipfile.ZipFile(tmp_path / "x.zip", "w") as zf:
        zf.writestr("x/weights.bin", b"\0" * 8)
    with pytest.raises(ValueError, match="zip archive that is not a NumPy .npz"):
        small_model().load_state_dict(fc.load(tmp_path / "x.zip"))


# ---- the command line ---------------------------------------------------------------------------

def good_state(arch=TINY_ARCH):
    from fastconv import _runs

    return _runs.build_model(arch, (1, 28, 28), 10).state_dict()


def run_folders(tmp_path):
    """(run folder or file, the file the error must name) for `fastconv eval --checkpoint`."""
    folders = []

    def folder(name, config=None, model=None, must_name="model.npz"):
        d = tmp_path / name
        d.mkdir()
        if config is not None:
            target = d / "config.json"
            config(target) if callable(config) else target.write_bytes(
                config if isinstance(config, bytes) else json.dumps(config).encode())
        if model is not None:
            model(d / "model.npz")
        folders.append((d, str(d / must_name) if must_name else str(d)))

    good_cfg = {"arch": TINY_ARCH, "data": "mnist"}

    def good_model(p):
        fc.save(good_state(), p)

    folder("config_list", [1, 2], good_model, "config.json")
    folder("config_deep", b"[" * 2000 + b"]" * 2000, good_model, "config.json")
    folder("config_control", b'{"arch": "INPUT\x01 -> FC"}', good_model, "config.json")
    folder("config_utf8", b'{"arch": "\xff"}', good_model, "config.json")
    folder("config_arch_number", {"arch": 3}, good_model, "config.json")
    folder("config_data_list", {"arch": TINY_ARCH, "data": ["mnist"]}, good_model, "config.json")
    folder("config_root_number", {"arch": TINY_ARCH, "data_root": 3}, good_model, "config.json")
    folder("config_huge", b'{"pad": "' + b"x" * (2 << 20) + b'"}', good_model, "config.json")
    folder("config_folder", lambda p: p.mkdir(), good_model, "config.json")
    folder("config_bad_arch", {"arch": "INPUT -> CONV(k=) -> FC"}, good_model, "config.json")
    folder("config_unknown_data", {"arch": TINY_ARCH, "data": "cifar"}, good_model, "config.json")
    folder("config_bad_root", {"arch": TINY_ARCH, "data_root": "/nonexistent/mnist"}, good_model, "config.json")
    folder("config_missing_arch", {"data": "mnist"}, good_model)
    folder("model_random", good_cfg, lambda p: p.write_bytes(np.random.default_rng(1).bytes(500)))
    folder("model_text", good_cfg, lambda p: p.write_text("weights: [1, 2, 3]\n"))
    folder("model_truncated_gzip", good_cfg, lambda p: p.write_bytes(b"\x1f\x8b\x08\x00" + b"\0" * 10))
    folder("model_legacy_torch", good_cfg, lambda p: p.write_bytes(
        b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.\x80\x02}q\x00."))
    folder("model_torch_zip", good_cfg, lambda p: npz(p, {"model/data.pkl": b"\x80\x02}.", "model/version": b"3"}))
    folder("model_shape_bomb", good_cfg, lambda p: npz(p, {"1.weight.npy": npy(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (131072, 131072), }", b"\0" * 16)}))
    folder("model_list", good_cfg, lambda p: fc.save([np.ones(3)], p))
    folder("model_wrong_shapes", good_cfg, lambda p: fc.save({k: np.ones(2, np.float32) for k in good_state()}, p))
    folder("model_wrong_keys", good_cfg, lambda p: fc.save({"w": np.ones(2, np.float32)}, p))
    folder("model_deep_manifest", good_cfg, lambda p: fastconv_file(p, None, raw_manifest=nested(3000)))
    folder("model_empty", good_cfg, lambda p: p.write_bytes(b""))
    folder("model_folder", good_cfg, lambda p: p.mkdir())
    folder("model_missing", good_cfg, None, "")
    if hasattr(os, "mkfifo"):
        folder("model_fifo", good_cfg, lambda p: os.mkfifo(p))
    return folders


def test_cli_eval_corpus_gives_one_line_and_exit_code_2(tmp_path, capsys):
    folders = run_folders(tmp_path)
    for folder, must_name in folders:
        code = cli.main(["eval", "--checkpoint", str(folder)])
        err = capsys.readouterr().err
        assert code == 2, (folder.name, err)
        assert err.startswith("fastconv eval: error: "), err
        assert_one_line(err, must_name)


def test_cli_eval_of_files_inside_bad_folders(tmp_path, capsys):
    """--checkpoint naming the file itself (model.npz or checkpoint.npz) reads the same config."""
    (tmp_path / "again").mkdir()
    for folder, must_name in run_folders(tmp_path)[:3] + run_folders(tmp_path / "again")[12:20]:
        target = folder / "model.npz"
        if not target.exists():
            continue
        assert cli.main(["eval", "--checkpoint", str(target)]) == 2
        assert_one_line(capsys.readouterr().err, must_name)


def test_cli_eval_in_a_process_never_hangs_or_shows_a_traceback(tmp_path):
    chosen = {"config_deep", "config_control", "model_shape_bomb", "model_legacy_torch", "model_fifo",
              "model_deep_manifest"}
    for folder, must_name in run_folders(tmp_path):
        if folder.name not in chosen:
            continue
        proc = run([sys.executable, "-m", "fastconv", "eval", "--checkpoint", str(folder)], timeout=120)
        assert proc.returncode == 2, (folder.name, proc.stderr)
        assert_one_line(proc.stderr, must_name)


def test_the_previous_tracebacks_are_gone(tmp_path, capsys):
    """The issue's reproducers, each once more by name."""
    from fastconv import _runs

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    fc.save(good_state(), run_dir / "model.npz")
    (run_dir / "config.json").write_text("[]")
    with pytest.raises(_runs.RunError, match=r"config.json: expected a JSON object of run settings, got a JSON list"):
        _runs.load_run(str(run_dir))
    (run_dir / "config.json").write_text('{"arch": "INPUT -> FC\x07"}')
    with pytest.raises(_runs.RunError, match=r"config.json: not valid JSON \(Invalid control character at"):
        _runs.load_run(str(run_dir))


@pytest.mark.parametrize("content", [b"PK\x03\x04 not a zip", b"\x80\x04N.", b"[]"])
def test_cli_train_resume_from_a_bad_checkpoint(tmp_path, capsys, content):
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.npz").write_bytes(content)
    code = cli.main(["train", "--arch", TINY_ARCH, "--epochs", "1", "--out", str(out), "--resume", "--threads", "1"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("fastconv train: error: ")
    assert_one_line(err, str(out / "checkpoint.npz"))


def training_checkpoint():
    """A valid training checkpoint of TINY_ARCH at the start (what `fastconv train` would resume)."""
    from fastconv import _runs

    model = _runs.build_model(TINY_ARCH, (1, 28, 28), 10)
    return {"format": "fastconv-checkpoint-1", "model": model.state_dict(),
            "optimizer": fc.optim.SGD(model.parameters(), lr=0.01, momentum=0.9).state_dict(),
            "rng": fc.get_rng_state(), "epoch": 0, "batch": 0, "history": [], "partial": {}}


@pytest.mark.parametrize("plans", [b"{not json", b'{"fastconv_conv_plans": 1, "plans": [{"path": "warp"}]}', b"[]"])
def test_cli_resume_with_damaged_conv_plans(tmp_path, capsys, plans):
    out = tmp_path / "run"
    out.mkdir()
    fc.save(training_checkpoint(), out / "checkpoint.npz")
    (out / "conv_plans.json").write_bytes(plans)
    assert cli.main(["train", "--arch", TINY_ARCH, "--epochs", "1", "--out", str(out), "--resume"]) == 2
    assert_one_line(capsys.readouterr().err, str(out / "conv_plans.json"))


@pytest.mark.parametrize("change", [
    {"epoch": -1}, {"model": None}, {"rng": [1]}, {"history": {}}, {"batch": 2, "partial": {"loss": 0.0}},
    {"batch": 2, "partial": {"loss": "x", "correct": 0, "count": 0, "classification": True, "seconds": 0.0}},
    {"optimizer": {"state": [1, 2], "param_groups": []}}, {"optimizer": {"state": {}, "param_groups": [[]]}},
    {"rng": {"bit_generator": "MT19937"}},
])
def test_cli_resume_from_a_damaged_training_checkpoint(tmp_path, capsys, change):
    out = tmp_path / "run"
    out.mkdir()
    state = training_checkpoint()
    state.update(change)
    fc.save(state, out / "checkpoint.npz")
    assert cli.main(["train", "--arch", TINY_ARCH, "--epochs", "1", "--out", str(out), "--resume"]) == 2
    err = capsys.readouterr().err
    assert_one_line(err, str(out / "checkpoint.npz"))


def test_cli_viz_of_a_bad_run_folder(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    for folder, must_name in run_folders(tmp_path)[:2]:
        assert cli.main(["viz", "--checkpoint", str(folder), "--out", str(tmp_path / "figs")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("fastconv viz: error: ")
        assert_one_line(err, must_name)
