"""Checkpoint save/load (lstm_c.checkpoint): round trip, atomic replace, refusing bad files."""

import hashlib
import json
import os
import pickle

import numpy as np
import pytest

from lstm_c.checkpoint import list_checkpoints, load, save


def sample_arrays():
    rng = np.random.default_rng(0)
    return {
        "embed.weight": rng.standard_normal((7, 3)).astype(np.float32),
        "lstm.weight_ih_l0": rng.standard_normal((8, 3)),
        "head.bias": np.array([-0.0, 1e-310, 3.5], dtype=np.float64),  # signed zero, subnormal
        "step": np.array(12345678901, dtype=np.int64),  # 0-d
        "mask": np.array([True, False]),
        "bytes": np.arange(256, dtype=np.uint8),
        "empty": np.zeros((0, 4), dtype=np.float32),
        "fortran": np.asfortranarray(rng.standard_normal((3, 5))),
        "big_endian": np.arange(6, dtype=">f8").reshape(2, 3),
        "file": np.ones(2),  # would clash with np.savez(file, ...)
        "allow_pickle": np.ones(1),
    }


META = {"model": {"vocab_size": 65, "hidden_size": 128, "num_layers": 2},
        "vocab": {"kind": "bytes", "symbols": [10, 32, 97]},
        "step": 100, "best_val_bpc": 1.4142, "note": "naïve ✓", "rng": {"state": 2**100 + 1},
        "flags": [True, None, "x"]}


def assert_identical(a, b):
    assert list(a) == list(b)
    for k in a:
        assert a[k].dtype == b[k].dtype, k
        assert a[k].shape == b[k].shape, k
        assert np.ascontiguousarray(a[k]).tobytes() == np.ascontiguousarray(b[k]).tobytes(), k


def test_round_trip(tmp_path):
    arrays = sample_arrays()
    path = save(tmp_path / "run", "best", arrays, META)
    assert path == os.path.join(tmp_path / "run", "best")
    assert sorted(os.listdir(path)) == ["config.json", "weights.npz"]
    assert sorted(os.listdir(tmp_path / "run")) == ["best"]  # no helper dirs left behind
    got, meta = load(tmp_path / "run", "best")
    assert_identical(got, arrays)
    assert meta == META
    cfg = json.loads((tmp_path / "run" / "best" / "config.json").read_text())
    assert cfg["format"] == "lstm-c checkpoint" and cfg["version"] == 1
    assert cfg["weights"]["arrays"]["embed.weight"] == {"dtype": "<f4", "shape": [7, 3]}
    with np.load(tmp_path / "run" / "best" / "weights.npz", allow_pickle=False) as npz:
        assert sorted(npz.files) == sorted(arrays)  # a plain npz, readable by np.load


def test_meta_is_converted_to_json(tmp_path):
    save(tmp_path, "a", {}, {"t": (1, 2), "f": np.float32(0.5), "i": np.int64(3), "b": np.bool_(1)})
    _, meta = load(tmp_path, "a")
    assert meta == {"t": [1, 2], "f": 0.5, "i": 3, "b": True}
    assert type(meta["i"]) is int


def test_overwrite_replaces(tmp_path):
    save(tmp_path, "last", {"w": np.zeros(3)}, {"step": 1})
    save(tmp_path, "last", {"w": np.ones(4), "v": np.ones(1)}, {"step": 2})
    arrays, meta = load(tmp_path, "last")
    assert meta == {"step": 2} and sorted(arrays) == ["v", "w"] and arrays["w"].shape == (4,)
    assert sorted(os.listdir(tmp_path)) == ["last"]


def test_save_fsyncs_files_and_directories(tmp_path, monkeypatch):
    calls = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd))[1])
    save(tmp_path, "a", {"w": np.ones(2)}, {})
    assert len(calls) >= 4  # weights.npz, config.json, the new directory, run_dir


# -- atomicity ------------------------------------------------------------------


def _old(tmp_path):
    arrays = {"w": np.arange(5.0)}
    save(tmp_path, "ck", arrays, {"step": 1})
    return arrays


def _assert_old_intact(tmp_path, arrays):
    got, meta = load(tmp_path, "ck")
    assert meta == {"step": 1}
    assert_identical(got, arrays)


def test_crash_while_writing_weights(tmp_path, monkeypatch):
    arrays = _old(tmp_path)

    def broken(fh, arr, **kw):
        fh.write(b"\x93NUMPY partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np.lib.format, "write_array", broken)
    with pytest.raises(OSError, match="No space"):
        save(tmp_path, "ck", {"w": np.zeros(5)}, {"step": 2})
    monkeypatch.undo()
    _assert_old_intact(tmp_path, arrays)
    assert sorted(os.listdir(tmp_path)) == ["ck"]


@pytest.mark.parametrize("fail_on", [1, 2])
def test_crash_in_a_rename_rolls_back(tmp_path, monkeypatch, fail_on):
    arrays = _old(tmp_path)
    real, n = os.replace, [0]

    def replace(src, dst):
        n[0] += 1
        if n[0] == fail_on:
            raise OSError("simulated crash")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="simulated"):
        save(tmp_path, "ck", {"w": np.zeros(5)}, {"step": 2})
    monkeypatch.undo()
    _assert_old_intact(tmp_path, arrays)
    assert sorted(os.listdir(tmp_path)) == ["ck"]


def test_crash_between_the_renames(tmp_path, monkeypatch):
    """A hard crash after 'name -> .name~old' and before 'tmp -> name': no rollback runs."""
    arrays = _old(tmp_path)
    real, n = os.replace, [0]

    def replace(src, dst):  # the first rename works, every later one (incl. rollback) fails
        n[0] += 1
        if n[0] >= 2:
            raise OSError("simulated crash")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError):
        save(tmp_path, "ck", {"w": np.zeros(5)}, {"step": 2})
    monkeypatch.undo()
    os.makedirs(tmp_path / ".ck~tmp-dead")  # a temp dir a killed process would leave
    (tmp_path / ".ck~tmp-dead" / "weights.npz").write_bytes(b"PK half")
    assert not (tmp_path / "ck").exists() and (tmp_path / ".ck~old").is_dir()
    _assert_old_intact(tmp_path, arrays)  # load reads the moved-aside copy
    assert list_checkpoints(tmp_path) == ["ck"]
    save(tmp_path, "other", {"w": np.ones(1)}, {})  # another name leaves ck's state alone
    assert (tmp_path / ".ck~old").is_dir()
    save(tmp_path, "ck", {"w": np.zeros(5)}, {"step": 3})  # recovers, then replaces
    assert load(tmp_path, "ck")[1] == {"step": 3}
    assert sorted(os.listdir(tmp_path)) == ["ck", "other"]


def test_crash_after_the_swap(tmp_path):
    _old(tmp_path)
    save(tmp_path, "stale", {"w": np.ones(1)}, {"step": 0})
    os.replace(tmp_path / "stale", tmp_path / ".ck~old")  # as if step 4 never ran
    assert load(tmp_path, "ck")[1] == {"step": 1}  # the current one wins
    save(tmp_path, "ck", {"w": np.ones(1)}, {"step": 2})
    assert sorted(os.listdir(tmp_path)) == ["ck"]


def test_save_does_not_replace_foreign_things(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not part of a checkpoint"):
        save(tmp_path, "notes", {}, {})
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ValueError, match="not a checkpoint directory"):
        save(tmp_path, "afile", {}, {})
    assert (tmp_path / "notes" / "todo.txt").read_text() == "keep me"
    assert sorted(os.listdir(tmp_path)) == ["afile", "notes"]


# -- bad input to save ------------------------------------------------------------


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "../x", ".hidden", "a~b", "a b", 3,
                                  "x" * 129])
def test_bad_names(tmp_path, name):
    with pytest.raises(ValueError, match="checkpoint name"):
        save(tmp_path, name, {}, {})
    with pytest.raises(ValueError, match="checkpoint name"):
        load(tmp_path, name)


@pytest.mark.parametrize("arrays, exc, match", [
    ({"w": np.array([1.0, np.nan])}, ValueError, r"arrays\['w'\]: 1 NaN or inf"),
    ({"w": np.array([np.inf], dtype=np.float32)}, ValueError, r"arrays\['w'\]"),
    ({"w": np.array([object()])}, TypeError, "numeric or bool"),
    ({"w": np.array(["a"])}, TypeError, "numeric or bool"),
    ({"a/b": np.ones(1)}, ValueError, "array name"),
    ({"": np.ones(1)}, ValueError, "array name"),
    ({3: np.ones(1)}, ValueError, "array name"),
    ([np.ones(1)], TypeError, "expected a dict"),
])
def test_bad_arrays(tmp_path, arrays, exc, match):
    with pytest.raises(exc, match=match):
        save(tmp_path, "a", arrays, {})
    assert not os.listdir(tmp_path)  # checked before anything is written


@pytest.mark.parametrize("meta, exc, match", [
    ({"format": "x"}, ValueError, "reserved"),
    ({"version": 2}, ValueError, "reserved"),
    ({"weights": {}}, ValueError, "reserved"),
    ({"loss": float("nan")}, ValueError, r"meta\['loss'\]"),
    ({"a": {1: 2}}, TypeError, r"meta\['a'\]: keys must be str"),
    ({"a": np.ones(2)}, TypeError, "arrays go in"),
    ({"a": {1, 2}}, TypeError, "expected JSON data"),
    ([1], TypeError, "expected a dict"),
])
def test_bad_meta(tmp_path, meta, exc, match):
    with pytest.raises(exc, match=match):
        save(tmp_path, "a", {}, meta)


# -- refusing bad checkpoints on load ----------------------------------------------


def _ck(tmp_path, arrays=None):
    save(tmp_path, "ck", {"w": np.arange(64.0), "b": np.ones(3, np.float32)} if arrays is None
         else arrays, {"step": 1})
    return tmp_path / "ck"


def _edit_config(ck, **changes):
    cfg = json.loads((ck / "config.json").read_text())
    for k, v in changes.items():
        if v is None:
            cfg.pop(k, None)
        else:
            cfg[k] = v
    (ck / "config.json").write_text(json.dumps(cfg))


def _rehash(ck, arrays_info=None):
    """Make config.json agree with the current weights.npz, as a consistent forgery would."""
    cfg = json.loads((ck / "config.json").read_text())
    cfg["weights"]["sha256"] = hashlib.sha256((ck / "weights.npz").read_bytes()).hexdigest()
    if arrays_info is not None:
        cfg["weights"]["arrays"] = arrays_info
    (ck / "config.json").write_text(json.dumps(cfg))


def refused(tmp_path, match, where="ck"):
    with pytest.raises(ValueError, match=match) as e:
        load(tmp_path, "ck")
    assert str(tmp_path / where) in str(e.value)  # the message names the path
    return str(e.value)


def test_missing(tmp_path):
    refused(tmp_path, "no such checkpoint")
    ck = _ck(tmp_path)
    os.remove(ck / "weights.npz")
    refused(tmp_path, "weights.npz: missing")
    os.remove(ck / "config.json")
    refused(tmp_path, "config.json: missing")
    os.rmdir(ck)
    (tmp_path / "ck").write_text("a file")
    refused(tmp_path, "not a checkpoint directory")


@pytest.mark.parametrize("text, match", [
    ("{not json", "invalid JSON"),
    ('{"format": "lstm-c checkpoint", "version": 1, "x": NaN}', "invalid JSON.*NaN"),
    ("[1, 2]", "expected a JSON object"),
    ("", "invalid JSON"),
    ("[" * 100000 + "]" * 100000, "invalid JSON"),
])
def test_invalid_json(tmp_path, text, match):
    ck = _ck(tmp_path)
    (ck / "config.json").write_text(text)
    refused(tmp_path, match, "ck/config.json")


def test_config_not_utf8(tmp_path):
    ck = _ck(tmp_path)
    (ck / "config.json").write_bytes(b'{"a": "\xff"}')
    refused(tmp_path, "not UTF-8", "ck/config.json")


@pytest.mark.parametrize("changes, match", [
    ({"format": None}, "no format marker"),
    ({"format": "torch checkpoint"}, "foreign format marker 'torch checkpoint'"),
    ({"version": 2}, "version 2 is newer .* upgrade lstm-c"),
    ({"version": "1"}, "must be an int"),
    ({"version": True}, "must be an int"),
    ({"version": 0}, "must be an int >= 1"),
    ({"version": None}, "must be an int"),
    ({"weights": None}, '"weights" must be'),
    ({"weights": {"file": "weights.npz", "sha256": "00", "arrays": {}}}, '"weights" must be'),
])
def test_bad_config_fields(tmp_path, changes, match):
    _edit_config(_ck(tmp_path), **changes)
    refused(tmp_path, match, "ck/config.json")


def test_truncated_npz(tmp_path):
    ck = _ck(tmp_path)
    raw = (ck / "weights.npz").read_bytes()
    (ck / "weights.npz").write_bytes(raw[: len(raw) // 2])
    refused(tmp_path, "sha256 differs", "ck/weights.npz")
    _rehash(ck)  # the hash agrees; the zip itself is still cut short
    refused(tmp_path, "not a readable npz archive: BadZipFile", "ck/weights.npz")
    (ck / "weights.npz").write_bytes(b"")
    _rehash(ck)
    refused(tmp_path, "not a readable npz archive", "ck/weights.npz")


def test_bit_flipped_npz(tmp_path):
    ck = _ck(tmp_path)
    raw = bytearray((ck / "weights.npz").read_bytes())
    at = bytes(raw).find(np.arange(64.0).tobytes()) + 100
    raw[at] ^= 0x04
    (ck / "weights.npz").write_bytes(bytes(raw))
    refused(tmp_path, "sha256 differs", "ck/weights.npz")
    _rehash(ck)  # past the hash, zip's CRC still catches it
    refused(tmp_path, "array 'w' cannot be read: BadZipFile: Bad CRC-32", "ck/weights.npz")


class _MakesMarker:
    """Unpickling this calls open(marker, "w"): proof that code from the file ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickled_object_array_is_never_loaded(tmp_path):
    # The control: this npz does run code when pickles are allowed.
    control = tmp_path / "control"
    control.mkdir()
    np.savez(control / "evil.npz", w=np.array([_MakesMarker(control / "ran")], dtype=object))
    np.load(control / "evil.npz", allow_pickle=True)["w"]
    assert (control / "ran").exists()

    marker = tmp_path / "marker"
    ck = _ck(tmp_path)
    np.savez(ck / "weights.npz", w=np.array([_MakesMarker(marker)], dtype=object))
    refused(tmp_path, "sha256 differs", "ck/weights.npz")
    _rehash(ck, {"w": {"dtype": "|O", "shape": [1]}})
    msg = refused(tmp_path, "array 'w' cannot be read", "ck/weights.npz")
    assert "allow_pickle" in msg or "bject" in msg
    assert not marker.exists()
    # a bare pickle in place of the npz
    (ck / "weights.npz").write_bytes(pickle.dumps(_MakesMarker(marker)))
    _rehash(ck)
    refused(tmp_path, "not a readable npz archive", "ck/weights.npz")
    assert not marker.exists()


def test_npy_instead_of_npz(tmp_path):
    ck = _ck(tmp_path)
    with open(ck / "weights.npz", "wb") as f:
        np.save(f, np.ones(3))
    _rehash(ck)
    refused(tmp_path, "not an npz archive", "ck/weights.npz")


def _forge(ck, arrays):
    """Replace weights.npz with `arrays` and make config.json agree with it."""
    np.savez(ck / "weights.npz", **arrays)
    _rehash(ck, {k: {"dtype": np.asarray(a).dtype.str, "shape": list(np.shape(a))}
                 for k, a in arrays.items()})


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64])
def test_nan_in_array(tmp_path, dtype):
    ck = _ck(tmp_path)
    _forge(ck, {"ok": np.ones(2), "bad": np.array([1, np.nan, np.inf, 2], dtype=dtype)})
    refused(tmp_path, r"array 'bad': 2 NaN or inf entries", "ck/weights.npz")


def test_arrays_must_match_config(tmp_path):
    ck = _ck(tmp_path)
    np.savez(ck / "weights.npz", w=np.arange(64.0), extra=np.ones(1))
    _rehash(ck)
    refused(tmp_path, r"missing \['b'\], unexpected \['extra'\]", "ck/weights.npz")
    np.savez(ck / "weights.npz", w=np.arange(63.0), b=np.ones(3, np.float32))
    _rehash(ck)
    refused(tmp_path, r"array 'w' is <f8 \[63\], config.json says <f8 \[64\]", "ck/weights.npz")


def test_weights_from_another_save(tmp_path):
    a = _ck(tmp_path / "a")
    b = _ck(tmp_path / "b", {"w": np.zeros(64), "b": np.ones(3, np.float32)})
    os.replace(b / "weights.npz", a / "weights.npz")
    refused(tmp_path / "a", "sha256 differs", "ck/weights.npz")


def test_symlinks_are_refused(tmp_path):
    """A checkpoint's files must be its own: a link could point anywhere (a secret, /dev/zero)."""
    outside = _ck(tmp_path / "outside")
    ck = _ck(tmp_path / "run")
    os.remove(ck / "weights.npz")
    os.symlink(outside / "weights.npz", ck / "weights.npz")
    (ck / "config.json").write_bytes((outside / "config.json").read_bytes())  # hash would match
    refused(tmp_path / "run", "symbolic link", "ck/weights.npz")
    os.remove(ck / "weights.npz")
    os.symlink("/dev/zero", ck / "weights.npz")
    refused(tmp_path / "run", "symbolic link", "ck/weights.npz")
    os.remove(ck / "weights.npz")
    (ck / "weights.npz").mkdir()
    refused(tmp_path / "run", "not a regular file", "ck/weights.npz")
    os.remove(ck / "config.json")
    os.symlink(outside / "config.json", ck / "config.json")
    refused(tmp_path / "run", "symbolic link", "ck/config.json")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_is_refused_without_blocking(tmp_path):
    ck = _ck(tmp_path)
    os.remove(ck / "config.json")
    os.mkfifo(ck / "config.json")
    refused(tmp_path, "not a regular file", "ck/config.json")


def test_list_checkpoints(tmp_path):
    assert list_checkpoints(tmp_path / "nothing") == []
    save(tmp_path, "last", {}, {})
    save(tmp_path, "best", {}, {})
    (tmp_path / "logs").mkdir()
    (tmp_path / "train.log").write_text("")
    assert list_checkpoints(tmp_path) == ["best", "last"]
    os.replace(tmp_path / "best", tmp_path / ".best~old")
    assert list_checkpoints(tmp_path) == ["best", "last"]
