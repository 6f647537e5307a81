"""Hostile checkpoint files (issue 7, item 2): loading a run either succeeds on a valid
checkpoint or refuses with a ValueError naming the file; nothing in the files is executed and
memory stays bounded by what the files legitimately hold.

The loaders: `checkpoint.load`, `train.load_model` (behind `lstm-c sample`, `eval`, `viz`)
and resuming a run (`lstm-c train --resume`: the run is rebuilt and takes one step). The files
are those of a real run of a tiny model; hypothesis (derandomized, bounded) mutates them family
by family; the number of inputs per family is printed in the terminal summary (conftest.py).
"""

import hashlib
import json
import os
import pickle
import resource
import shutil
import signal
import struct
import time
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lstm_c import checkpoint
from lstm_c.cli import main
from lstm_c.train import TrainConfig, _Run, load_model, train

TINY = dict(hidden_size=8, num_layers=1, embed_size=4, seq_len=8, batch_size=2, eval_every=2,
            eval_chars=200, threads=1, max_steps=4)
TEXT = "def add(a, b):\n    return a + b\n\nclass Point:\n    x = 'quote'\n" * 25
WEIGHTS, CONFIG = "weights.npz", "config.json"


def fuzz_settings(n):
    return settings(max_examples=n, derandomize=True, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# -- the valid run, and putting it back before each input ----------------------------------


class Run:
    """A tiny real run; `fresh()` rewrites RUN/last from its pristine bytes."""

    def __init__(self, base):
        self.base = base
        self.corpus = base / "text.txt"
        self.corpus.write_text(TEXT)
        train(str(self.corpus), str(base / "orig"), TrainConfig(**TINY), progress=False)
        self.files = {f: (base / "orig" / "last" / f).read_bytes() for f in (WEIGHTS, CONFIG)}
        self.arrays, self.meta = checkpoint.load(base / "orig", "last")
        self.config = json.loads(self.files[CONFIG])
        self.run = base / "run"
        self.ck = self.run / "last"

    def fresh(self):
        shutil.rmtree(self.run, ignore_errors=True)
        shutil.rmtree(self.base / "rt", ignore_errors=True)
        self.ck.mkdir(parents=True)
        for f, raw in self.files.items():
            (self.ck / f).write_bytes(raw)
        return self.ck

    def write_config(self, config):
        (self.ck / CONFIG).write_text(json.dumps(config, indent=1))

    def rehash(self, arrays_info=None):
        """Make config.json agree with the current weights.npz, as a deliberate forgery would."""
        config = json.loads((self.ck / CONFIG).read_bytes())
        config["weights"]["sha256"] = hashlib.sha256((self.ck / WEIGHTS).read_bytes()).hexdigest()
        if arrays_info is not None:
            config["weights"]["arrays"] = arrays_info
        self.write_config(config)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return Run(tmp_path_factory.mktemp("fuzz"))


# -- the loaders and the contract -------------------------------------------------------------


def _load(path):
    return checkpoint.load(path, "last")


def _load_model(path):
    return load_model(str(path), "last")


def _resume(path):
    r = _Run(None, str(path), TrainConfig(max_steps=10**9), True, lambda msg: None)
    r.train_step()  # what a resumed run does next
    return r


LOADERS = (("checkpoint.load", _load), ("load_model", _load_model), ("resume", _resume))


def _same(a, b):
    return sorted(a) == sorted(b) and all(
        a[k].dtype == b[k].dtype and a[k].shape == b[k].shape
        and np.ascontiguousarray(a[k]).tobytes() == np.ascontiguousarray(b[k]).tobytes()
        for k in a)


def contract(run, family, record, must_refuse=False, same_arrays=True):
    """Run every loader on run.run: each loads a valid checkpoint or raises a ValueError that
    names the checkpoint. Anything else fails."""
    record(family, None, "input")
    outcome = {}
    for name, load in LOADERS:
        try:
            got = load(run.run)
        except ValueError as e:
            assert str(run.run) in str(e), f"{name}: the error does not name the checkpoint: {e}"
            record(family, name, "refused")
            outcome[name] = "refused"
            continue
        record(family, name, "loaded")
        outcome[name] = "loaded"
        assert not must_refuse, f"{name} loaded a checkpoint it must refuse"
        if name == "checkpoint.load":
            arrays, meta = got
            if same_arrays:
                assert _same(arrays, run.arrays)
            # What was loaded is itself valid checkpoint content: finite, plain arrays and JSON
            # meta (the checks `save` makes before writing).
            checkpoint._check_arrays(arrays)
            json.dumps(checkpoint._clean_json(meta, ""), allow_nan=False)
        elif name == "load_model" and same_arrays:
            model = got[0]
            params = {"model:" + k: v for k, v in model.parameters().items()}
            assert _same(params, {k: v for k, v in run.arrays.items() if k.startswith("model:")})
    if outcome["checkpoint.load"] == "refused":  # nothing builds on a refused checkpoint
        assert set(outcome.values()) == {"refused"}, outcome
    return outcome


def test_the_pristine_run_loads_everywhere(run, record_fuzz):
    run.fresh()
    assert set(contract(run, "pristine", record_fuzz).values()) == {"loaded"}


# -- byte-level damage: truncation, bit flips, overwritten and inserted bytes -----------------


@fuzz_settings(60)
@given(data=st.data(), which=st.sampled_from([WEIGHTS, CONFIG]), rehash=st.booleans())
def test_truncated(run, record_fuzz, data, which, rehash):
    run.fresh()
    raw = run.files[which]
    cut = data.draw(st.integers(0, len(raw) - 1), label="cut")
    (run.ck / which).write_bytes(raw[:cut])
    if which == WEIGHTS and rehash:
        run.rehash()
    # A zip cut anywhere loses its end record; a JSON object cut before its "}" is not one.
    must = which == WEIGHTS or cut < len(raw.rstrip())
    contract(run, "truncated", record_fuzz, must_refuse=must)


@fuzz_settings(150)
@given(data=st.data(), which=st.sampled_from([WEIGHTS, CONFIG]), rehash=st.booleans())
def test_bit_flips(run, record_fuzz, data, which, rehash):
    run.fresh()
    raw = bytearray(run.files[which])
    for at, bit in data.draw(st.lists(st.tuples(st.integers(0, len(raw) - 1), st.integers(0, 7)),
                                      min_size=1, max_size=3), label="flips"):
        raw[at] ^= 1 << bit
    (run.ck / which).write_bytes(bytes(raw))
    changed = bytes(raw) != run.files[which]
    if which == WEIGHTS and rehash:
        run.rehash()
    # A changed weights.npz passes only with a forged hash; then its arrays must be intact
    # (a flip in a zip timestamp is harmless; one in the data fails the CRC).
    contract(run, "bit flips", record_fuzz, must_refuse=which == WEIGHTS and changed and not rehash)


@fuzz_settings(80)
@given(data=st.data(), which=st.sampled_from([WEIGHTS, CONFIG]), rehash=st.booleans(),
       insert=st.booleans(), junk=st.binary(min_size=1, max_size=64))
def test_overwritten_or_inserted_bytes(run, record_fuzz, data, which, rehash, insert, junk):
    run.fresh()
    raw = run.files[which]
    at = data.draw(st.integers(0, len(raw)), label="at")
    new = raw[:at] + junk + raw[at + (0 if insert else len(junk)):]
    (run.ck / which).write_bytes(new)
    if which == WEIGHTS and rehash:
        run.rehash()
    contract(run, "bytes overwritten/inserted", record_fuzz,
             must_refuse=which == WEIGHTS and new != raw and not rehash)


# -- forged arrays: wrong shapes, dtypes, NaN/inf, missing and extra arrays --------------------

FORGED_DTYPES = [np.float64, np.float16, ">f4", np.int32, np.uint8, np.bool_, np.complex64,
                 "U3", "S2", "V4", [("a", "<f4")], "M8[s]", "m8[ms]"]


@fuzz_settings(120)
@given(data=st.data(),
       action=st.sampled_from(["shape", "dtype", "nan/inf", "remove", "extra", "scalar", "empty"]),
       sync=st.sampled_from(["forged config", "config as it was"]))
def test_forged_arrays(run, record_fuzz, data, action, sync):
    run.fresh()
    arrays = dict(run.arrays)
    key = data.draw(st.sampled_from(sorted(arrays)), label="key")
    a = arrays[key]
    if action == "shape":
        shape = data.draw(st.lists(st.integers(0, 6), max_size=3), label="shape")
        arrays[key] = np.resize(a, shape).astype(a.dtype) if shape else a.reshape(-1)[:1].reshape(())
    elif action == "dtype":
        dtype = np.dtype(data.draw(st.sampled_from(FORGED_DTYPES), label="dtype"))
        arrays[key] = a.astype(dtype) if dtype.kind in "biufc" else np.zeros(a.shape, dtype)
    elif action == "nan/inf":
        b = a.copy()
        i = data.draw(st.integers(0, b.size - 1), label="index")
        b.reshape(-1)[i] = data.draw(st.sampled_from([np.nan, np.inf, -np.inf]), label="value")
        arrays[key] = b
    elif action == "remove":
        del arrays[key]
    elif action == "extra":
        arrays[data.draw(st.sampled_from(["extra", "model:extra", "state:x", key + "2"]))] = a
    elif action == "scalar":
        arrays[key] = np.float32(1.0)
    else:
        arrays[key] = np.zeros((0,) + a.shape[1:], a.dtype)
    np.savez(run.ck / WEIGHTS, **arrays)
    forged = sync == "forged config"
    if forged:
        run.rehash({k: {"dtype": np.asarray(v).dtype.str, "shape": list(np.shape(v))}
                    for k, v in arrays.items()})
    else:
        run.rehash()  # the hash agrees, the array list does not
    changed = not _same({k: np.asarray(v) for k, v in arrays.items()}, run.arrays)
    nonfinite = any(np.asarray(v).dtype.kind in "fc" and not np.all(np.isfinite(v))
                    for v in arrays.values())
    plain = all(np.asarray(v).dtype.kind in "biufc" for v in arrays.values())
    contract(run, "forged arrays", record_fuzz, same_arrays=False,
             must_refuse=changed and not forged or nonfinite or not plain)


# -- config.json: keys added, removed, retyped; hostile values anywhere in the tree ------------

BIG_INTS = [0, -1, 1, 2, 2**31 - 1, 2**31, 2**32, 2**53 + 1, 2**63, 2**64, 10**18, 10**100,
            -10**30, 4 * 10**4299]
ODD_STRINGS = ["", "float64", "float16", "object", "numpy", "cython", "bytes", "chars", "adam",
               "sgd", "epoch", "cosine", "lstm-c checkpoint", "lstm-c batches", "PCG64",
               "MT19937", "\ud800", "\x00", "é✓", "x" * 5000, "/dev/zero", "..", "weights.npz",
               "|O", "<f4", "<f8"]
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.sampled_from(BIG_INTS),
                    st.floats(allow_nan=False, allow_infinity=False),
                    st.sampled_from([1e308, -0.0, 5e-324, 0.5, 1.0, 2.0]),
                    st.text(max_size=12), st.sampled_from(ODD_STRINGS))
VALUES = st.recursive(SCALARS, lambda kids: st.lists(kids, max_size=4)
                      | st.dictionaries(st.text(max_size=8), kids, max_size=4), max_leaves=8)


def _children(node):
    return list(node) if isinstance(node, dict) else list(range(len(node)))


def _mutate_tree(data, config):
    node = config
    for _ in range(8):  # walk down to a random container
        inner = [k for k in _children(node) if isinstance(node[k], (dict, list))]
        if not inner or data.draw(st.booleans(), label="stop here"):
            break
        node = node[data.draw(st.sampled_from(inner), label="into")]
    op = data.draw(st.sampled_from(["remove", "replace", "add"]), label="op")
    keys = _children(node)
    if op == "add" or not keys:
        value = data.draw(VALUES, label="new value")
        if isinstance(node, dict):
            node[data.draw(st.one_of(st.text(max_size=10), st.sampled_from(
                ["format", "version", "weights", "kind", "step", "extra", "train_config"])),
                label="new key")] = value
        else:
            node.append(value)
    elif op == "remove":
        del node[data.draw(st.sampled_from(keys), label="remove")]
    else:
        node[data.draw(st.sampled_from(keys), label="replace")] = data.draw(VALUES, label="value")


@fuzz_settings(250)
@given(data=st.data(), n_ops=st.integers(1, 3))
def test_config_tree_mutations(run, record_fuzz, data, n_ops):
    run.fresh()
    config = json.loads(run.files[CONFIG])
    for _ in range(n_ops):
        _mutate_tree(data, config)
    run.write_config(config)
    contract(run, "config keys/values", record_fuzz)


RAW_VALUES = ["1e999", "-1e999", "NaN", "Infinity", "-Infinity", "1" + "0" * 5000,
              "1" + "0" * 4000, "1e-400", "[" * 50000 + "]" * 50000, "{\"a\":" * 3000 + "1" +
              "}" * 3000, "[" * 200 + "]" * 200, "\"\\ud800\"", "\"\\u0000\"", "true", "null",
              "-0", "0.1e1", "\"" + "y" * 100000 + "\"", "[]", "{}", "1,", "\"\\x\"", "01"]


@fuzz_settings(120)
@given(data=st.data(), kind=st.sampled_from(["value", "bom", "non-utf8", "duplicate key",
                                             "trailing", "leading"]))
def test_config_raw_text(run, record_fuzz, data, kind):
    run.fresh()
    text = run.files[CONFIG]
    if kind == "value":  # a hostile token in place of a value, scalar or container
        spots = [i + 2 for i in range(len(text) - 2) if text[i:i + 2] == b": "]
        at = data.draw(st.sampled_from(spots), label="at")
        end, depth = at, 0
        while end < len(text):
            c = text[end:end + 1]
            if c in (b"{", b"["):
                depth += 1
            elif c in (b"}", b"]"):
                if depth == 0:
                    break
                depth -= 1
            elif c in (b",", b"\n") and depth == 0:
                break
            end += 1
        token = data.draw(st.sampled_from(RAW_VALUES), label="token").encode()
        new = text[:at] + token + text[end:]
    elif kind == "bom":
        new = b"\xef\xbb\xbf" + text
    elif kind == "non-utf8":
        at = data.draw(st.integers(0, len(text)), label="at")
        bad = data.draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80",
                                         b"\xc0\xaf", b"\x00"]), label="bytes")
        new = text[:at] + bad + text[at:]
    elif kind == "duplicate key":
        key = data.draw(st.sampled_from(["format", "version", "weights", "kind", "model_config",
                                         "step", "vocab"]), label="key")
        value = json.dumps(data.draw(VALUES, label="value")).encode()
        new = text.rstrip()[:-1] + b', "' + key.encode() + b'": ' + value + b"}\n"
    elif kind == "trailing":
        new = text + data.draw(st.sampled_from([b"x", b"{}", b"\x00", b" \n\t", b"]"]))
    else:
        new = data.draw(st.sampled_from([b"[", b" ", b"\n", b"//", b"\x00"])) + text
    (run.ck / CONFIG).write_bytes(new)
    contract(run, "config raw text", record_fuzz)


# -- pickles: never unpickled, nothing executed ---------------------------------------------


class MakesMarker:
    """Unpickling this calls open(marker, "w"): proof that code from a file ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _stored_npz(path, members):
    """A stored zip of raw members (name -> bytes), as np.savez lays them out."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, raw in members.items():
            zf.writestr(name, raw)


def _npy_bytes(arr, allow_pickle=True):
    import io
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=allow_pickle)
    return buf.getvalue()


@pytest.mark.parametrize("how", ["object array, config says |O", "object array, config says <f4",
                                 "object array among the real ones", "bare pickle as weights.npz",
                                 "bare .npy of objects as weights.npz",
                                 "pickle in a member without .npy magic", "pickle as config.json"])
def test_pickled_objects_are_never_loaded(run, record_fuzz, tmp_path, how):
    marker = tmp_path / "code-ran"
    evil = np.array([MakesMarker(marker)], dtype=object)
    # the control: this payload does run code when unpickled
    pickle.loads(pickle.dumps(MakesMarker(tmp_path / "control")))
    assert (tmp_path / "control").exists()

    run.fresh()
    key = "model:head.bias"
    info = None
    if how.startswith("object array, config says"):
        members = {k + ".npy": _npy_bytes(v) for k, v in run.arrays.items()}
        members[key + ".npy"] = _npy_bytes(evil)
        _stored_npz(run.ck / WEIGHTS, members)
        info = {k: {"dtype": v.dtype.str, "shape": list(v.shape)} for k, v in run.arrays.items()}
        info[key] = {"dtype": "|O" if how.endswith("|O") else "<f4", "shape": [1]}
    elif how == "object array among the real ones":
        np.savez(run.ck / WEIGHTS, **{**run.arrays, "evil": evil})
        info = {k: {"dtype": v.dtype.str, "shape": list(v.shape)} for k, v in run.arrays.items()}
        info["evil"] = {"dtype": "|O", "shape": [1]}
    elif how == "bare pickle as weights.npz":
        (run.ck / WEIGHTS).write_bytes(pickle.dumps({k: v for k, v in run.arrays.items()}
                                                    | {"evil": MakesMarker(marker)}))
    elif how == "bare .npy of objects as weights.npz":
        (run.ck / WEIGHTS).write_bytes(_npy_bytes(evil))
    elif how == "pickle in a member without .npy magic":
        members = {k + ".npy": _npy_bytes(v) for k, v in run.arrays.items()}
        members[key] = pickle.dumps(MakesMarker(marker))  # np.load would return these bytes
        del members[key + ".npy"]
        _stored_npz(run.ck / WEIGHTS, members)
    else:
        (run.ck / CONFIG).write_bytes(pickle.dumps(MakesMarker(marker)))
    if how != "pickle as config.json":
        run.rehash(info)
    contract(run, "pickles", record_fuzz, must_refuse=True)
    assert not marker.exists(), "code from the checkpoint ran"


# -- zip bombs and other memory traps: refused before anything big is allocated ----------------


def _peak_while(fn):
    """(peak bytes Python and NumPy allocated while fn ran, growth of the process's max RSS)."""
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    try:
        fn()
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    return peak, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) * 1024


def _bomb_member(zf, name, header, n_zero_bytes):
    """A deflated member: `header`, then n_zero_bytes zeros, compressed ~1000:1."""
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED
    with zf.open(info, "w", force_zip64=True) as m:
        m.write(header)
        chunk = bytes(1 << 20)
        for _ in range(n_zero_bytes >> 20):
            m.write(chunk)


def _npy_header(dtype, shape):
    import io
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": dtype, "fortran_order": False,
                                               "shape": tuple(shape)})
    return buf.getvalue()


BOMB = 256 << 20  # what the bomb decompresses to


def _make_bomb(run, how):
    key = "model:embed.weight"
    info = {k: {"dtype": v.dtype.str, "shape": list(v.shape)} for k, v in run.arrays.items()}
    path = run.ck / WEIGHTS
    if how == "deflated member, consistent config":
        with zipfile.ZipFile(path, "w") as zf:
            for k, v in run.arrays.items():
                if k != key:
                    zf.writestr(k + ".npy", _npy_bytes(v, False))
            _bomb_member(zf, key + ".npy", _npy_header("<f4", (BOMB // 4,)), BOMB)
        info[key] = {"dtype": "<f4", "shape": [BOMB // 4]}
    elif how == "deflated member without .npy magic":  # np.load returns its bytes, all of them
        with zipfile.ZipFile(path, "w") as zf:
            for k, v in run.arrays.items():
                if k != key:
                    zf.writestr(k + ".npy", _npy_bytes(v, False))
            _bomb_member(zf, key, b"", BOMB)
    elif how == "header claims 2**40 elements":
        members = {k + ".npy": _npy_bytes(v, False) for k, v in run.arrays.items()}
        members[key + ".npy"] = _npy_header("<f4", (2**40,)) + bytes(64)
        _stored_npz(path, members)
        info[key] = {"dtype": "<f4", "shape": [2**40]}
    elif how == "header claims 2**28 elements":  # small enough that numpy would allocate it
        members = {k + ".npy": _npy_bytes(v, False) for k, v in run.arrays.items()}
        members[key + ".npy"] = _npy_header("<f4", (2**28,)) + bytes(64)
        _stored_npz(path, members)
        info[key] = {"dtype": "<f4", "shape": [2**28]}
    elif how == "central directory claims 2 GB members":
        raw = bytearray(run.files[WEIGHTS])
        at = raw.find(b"PK\x01\x02")  # first central directory entry
        struct.pack_into("<II", raw, at + 20, 0x7FFF0000, 0x7FFF0000)  # compressed, uncompressed
        path.write_bytes(bytes(raw))
    elif how == "8 GiB sparse weights.npz":
        with open(path, "r+b") as f:
            f.truncate(8 << 30)
    elif how == "huge dtype itemsize":
        members = {k + ".npy": _npy_bytes(v, False) for k, v in run.arrays.items()}
        members[key + ".npy"] = _npy_header("|V1000000000", (4,)) + bytes(64)
        _stored_npz(path, members)
        info[key] = {"dtype": "|V1000000000", "shape": [4]}
    if how != "8 GiB sparse weights.npz":
        run.rehash(info)


@pytest.mark.parametrize("how", ["deflated member, consistent config",
                                 "deflated member without .npy magic",
                                 "header claims 2**40 elements", "header claims 2**28 elements",
                                 "central directory claims 2 GB members",
                                 "8 GiB sparse weights.npz", "huge dtype itemsize"])
def test_zip_bombs_are_refused_with_bounded_memory(run, record_fuzz, how):
    run.fresh()
    _make_bomb(run, how)
    t0 = time.perf_counter()
    e = []
    peak, rss = _peak_while(lambda: e.append(pytest.raises(ValueError, checkpoint.load,
                                                          run.run, "last").value))
    seconds = time.perf_counter() - t0
    assert str(run.ck / WEIGHTS) in str(e[0])
    # A valid load of this run needs ~100 KB; the bombs would need 256 MiB to 4 TiB.
    assert peak < 4 << 20, f"{how}: {peak / 2**20:.1f} MiB allocated while refusing"
    assert rss < 64 << 20, f"{how}: max RSS grew by {rss / 2**20:.1f} MiB"
    assert seconds < 5, f"{how}: took {seconds:.1f} s to refuse"
    print(f"{how}: refused in {seconds * 1e3:.0f} ms, peak {peak / 1024:.0f} KiB traced, "
          f"max RSS +{rss / 1024:.0f} KiB: {e[0]}")
    contract(run, "zip bombs / memory traps", record_fuzz, must_refuse=True)


def test_a_config_json_of_100_mb_is_refused_without_reading_it(run, record_fuzz):
    run.fresh()
    with open(run.ck / CONFIG, "wb") as f:
        f.write(b'{"format": "lstm-c checkpoint", "version": 1, "note": "')
        chunk = b"z" * (1 << 20)
        for _ in range(100):
            f.write(chunk)
        f.write(b'"}')
    peak, _ = _peak_while(lambda: pytest.raises(ValueError, checkpoint.load, run.run, "last"))
    with pytest.raises(ValueError, match="config.json: larger than 64 MiB"):
        checkpoint.load(run.run, "last")
    # (was 64 MiB: the cap was read first, and read(n) allocates n bytes up front)
    assert peak < 4 << 20, f"{peak / 2**20:.0f} MiB allocated refusing a 100 MB config.json"
    contract(run, "huge config.json", record_fuzz, must_refuse=True)


# -- symlinks and special files ------------------------------------------------------------


def _symlink_case(run, how):
    ck = run.ck
    target, link = how.split(" -> ")
    if target == "last":
        shutil.rmtree(ck)
        path = ck
    else:
        path = ck / target
        os.remove(path)
    if link == "/dev/zero":
        os.symlink("/dev/zero", path)
    elif link == "a directory":
        os.symlink(run.base, path)
    elif link == "dangling":
        os.symlink(run.base / "nowhere", path)
    elif link == "itself (a loop)":
        os.symlink(path.name, path)
    elif link == "a loop of two":
        other = path.parent / (path.name + ".other")
        os.symlink(other.name, path)
        os.symlink(path.name, other)
    elif link == "the valid file elsewhere":
        os.symlink(run.base / "orig" / "last" / target, path)
    elif link == "the valid checkpoint elsewhere":
        os.symlink(run.base / "orig" / "last", path)


SYMLINKS = [f"{f} -> {t}" for f in (WEIGHTS, CONFIG)
            for t in ("/dev/zero", "a directory", "dangling", "itself (a loop)", "a loop of two",
                      "the valid file elsewhere")] + \
           [f"last -> {t}" for t in ("/dev/zero", "dangling", "itself (a loop)", "a loop of two")]


def _alarm(seconds):
    def ring(signum, frame):
        raise TimeoutError(f"no answer within {seconds} s")
    signal.signal(signal.SIGALRM, ring)
    signal.alarm(seconds)


@pytest.mark.parametrize("how", SYMLINKS)
def test_symlinks_are_refused_without_following_them(run, record_fuzz, how):
    run.fresh()
    _symlink_case(run, how)
    _alarm(20)  # /dev/zero never ends: a loader that followed it would hang here
    try:
        contract(run, "symlinks", record_fuzz, must_refuse=True)
    finally:
        signal.alarm(0)


def test_a_checkpoint_directory_linked_whole_loads(run, record_fuzz):
    # RUN/last as a link to a complete checkpoint directory is a valid checkpoint: its files
    # are its own (the links refused are to files, which could point at anything).
    run.fresh()
    _symlink_case(run, "last -> the valid checkpoint elsewhere")
    assert set(contract(run, "symlinks", record_fuzz).values()) == {"loaded"}


# -- regressions: one per bug the fuzzing found ----------------------------------------------


def test_regression_1e999_in_config_json_is_refused_not_read_as_inf(run):
    # Was: json.loads reads 1e999 as float("inf"); load returned elapsed=inf, which resumed a
    # run with infinite elapsed time and which `save` itself refuses to write.
    run.fresh()
    text = run.files[CONFIG].replace(b'"elapsed": ', b'"elapsed": 1e999, "was": ', 1)
    (run.ck / CONFIG).write_bytes(text)
    with pytest.raises(ValueError, match=r"config.json: invalid JSON \(the number 1e999 is out"):
        checkpoint.load(run.run, "last")


def test_regression_a_deflated_zip_bomb_is_refused_before_it_expands(run):
    # Was: np.load inflated the member: a 256 MiB array loaded out of a ~260 KB file (one
    # that ends short: 190 MiB of RSS, then an EOF error).
    run.fresh()
    _make_bomb(run, "deflated member, consistent config")
    with pytest.raises(ValueError, match="is compressed .* zip bomb"):
        checkpoint.load(run.run, "last")


def test_regression_a_member_without_npy_magic_is_refused(run):
    # Was: np.load returned the member's raw bytes, and load crashed with AttributeError
    # ('bytes' object has no attribute 'dtype').
    run.fresh()
    members = {k + ".npy": _npy_bytes(v, False) for k, v in run.arrays.items()}
    members["model:head.bias"] = members.pop("model:head.bias.npy")[200:]
    _stored_npz(run.ck / WEIGHTS, members)
    run.rehash()
    with pytest.raises(ValueError, match="array 'model:head.bias' cannot be read"):
        checkpoint.load(run.run, "last")


def test_regression_a_header_larger_than_its_member_is_refused_before_allocating(run):
    run.fresh()
    _make_bomb(run, "header claims 2**28 elements")
    with pytest.raises(ValueError, match=r"header declares 268435456 x 4 bytes .* holds"):
        checkpoint.load(run.run, "last")


def test_regression_a_huge_sparse_weights_npz_is_refused_before_hashing(run):
    # Was: load hashed all of it first (3 s per GiB here: an hour for a 1 TB sparse file).
    run.fresh()
    _make_bomb(run, "8 GiB sparse weights.npz")
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="8589934592 bytes, more than the arrays"):
        checkpoint.load(run.run, "last")
    assert time.perf_counter() - t0 < 1


def test_regression_an_oversized_model_config_is_refused_before_allocating(run):
    # Was: load_model built CharLM(hidden_size=30000) first: MemoryError (26.8 GiB) or, for
    # sizes that fit, gigabytes allocated before load_state_dict refused the weights.
    run.fresh()
    config = json.loads(run.files[CONFIG])
    config["model_config"]["hidden_size"] = 30000
    run.write_config(config)
    peak, _ = _peak_while(lambda: pytest.raises(ValueError, load_model, str(run.run), "last"))
    with pytest.raises(ValueError, match="model_config .* does not match the weights"):
        load_model(str(run.run), "last")
    with pytest.raises(ValueError, match="model_config .* does not match the weights"):
        _resume(run.run)
    assert peak < 4 << 20


@pytest.mark.parametrize("key, value, match", [
    ("model_config", None, '"model_config" must be an object'),
    ("model_config", {"a": 1}, '"model_config" must be an object'),
    ("vocab", None, "vocabulary JSON"),
    ("train_config", [], '"train_config" must be an object'),
])
def test_regression_load_model_refuses_malformed_run_fields(run, key, value, match):
    # Was: KeyError or TypeError from CharLM(**meta["model_config"]) etc. (a traceback from
    # `lstm-c sample`, which turns only ValueError and OSError into a message).
    run.fresh()
    config = json.loads(run.files[CONFIG])
    if value is None:
        del config[key]
    else:
        config[key] = value
    run.write_config(config)
    with pytest.raises(ValueError, match=match) as e:
        load_model(str(run.run), "last")
    assert str(run.ck / CONFIG) in str(e.value)


@pytest.mark.parametrize("key, value, match", [
    ("step", None, '"step" must be an int'), ("step", "x", '"step" must be an int'),
    ("elapsed", None, '"elapsed" must be a number'), ("best_val", None, None),
    ("best_val", "x", '"best_val" must be'), ("history", 5, '"history" must be a list'),
    ("data_path", 5, '"data_path" must be a non-empty string'),
    ("optim", 3, '"optim" must be an object'), ("batches", None, '"batches" must be an object'),
    ("train_config", {"hidden_size": "x"}, "train_config"),
])
def test_regression_resume_refuses_malformed_run_fields(run, key, value, match):
    # Was: KeyError, TypeError, or a "successful" resume that crashed at its first step
    # (step "x", history 5) or trained with elapsed=None.
    run.fresh()
    config = json.loads(run.files[CONFIG])
    if value is None and match is not None:
        del config[key]
    elif value is None:
        del config[key]
        match = '"best_val" must be'
    else:
        config[key] = value
    run.write_config(config)
    with pytest.raises(ValueError, match=match) as e:
        _resume(run.run)
    assert str(run.ck / CONFIG) in str(e.value)


def test_cli_sample_on_a_hostile_run_exits_2_with_a_message(run, capsys):
    run.fresh()
    config = json.loads(run.files[CONFIG])
    config["model_config"] = {"a": 1}
    run.write_config(config)
    assert main(["sample", str(run.run), "--checkpoint", "last", "--length", "5"]) == 2
    err = capsys.readouterr().err
    assert "config.json" in err and "model_config" in err and "Traceback" not in err
