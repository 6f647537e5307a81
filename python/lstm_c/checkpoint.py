"""Checkpoints: a directory ``run_dir/name/`` with ``weights.npz`` and ``config.json``.

``weights.npz`` holds arrays only (a zip of ``.npy`` files, written with
``allow_pickle=False`` and read with ``np.load(..., allow_pickle=False)``:
nothing in a checkpoint is ever executed). ``config.json`` holds the caller's
``meta`` plus::

    {"format": "lstm-c checkpoint", "version": 1, ...meta...,
     "weights": {"file": "weights.npz", "sha256": "...",
                 "arrays": {name: {"dtype": "<f4", "shape": [...]}, ...}}}

The hash and the array list tie the two files together: a corrupt, truncated
or swapped ``weights.npz`` is refused on load with a ValueError naming the
file and the problem, as are invalid JSON, a missing or foreign format marker,
a newer format version, NaN/inf in an array, and files that are symlinks or
not regular files (a checkpoint holds its own files; following a link could
read anything, e.g. a device that never ends).

Memory and time stay bounded by what config.json declares, whoever wrote the
files: a weights.npz larger than its arrays need is refused before it is read
(so hashing a huge sparse file cannot take hours), every zip member must be
stored, not compressed (as `save` writes them; a compressed member could
expand without bound, a zip bomb), and each array's .npy header must agree
with config.json and with its member's size before any array is allocated.

Saving is atomic (see `save`): at every moment ``run_dir/name`` is either the
complete previous checkpoint or the complete new one, except in one window
between two renames where only ``run_dir/.name~old`` (the complete previous
one) exists; `load` reads that copy then, and the next `save` puts it back
first. Not safe for two processes saving the same name at once.
"""

import collections
import errno
import hashlib
import json
import math
import numbers
import os
import re
import shutil
import stat
import tempfile
import zipfile

import numpy as np

from lstm_c import _validate as check

__all__ = ["save", "load", "list_checkpoints", "recover", "FORMAT", "VERSION"]

FORMAT = "lstm-c checkpoint"
VERSION = 1
WEIGHTS = "weights.npz"
CONFIG = "config.json"
RESERVED = ("format", "version", "weights")  # config.json keys that meta cannot use

# Names are one path component. "~" is not allowed, so the helper names
# ".{name}~tmp-*" and ".{name}~old" of one checkpoint never match another's.
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}\Z")
_SHA_RE = re.compile(r"[0-9a-f]{64}\Z")
_PLAIN_DTYPE_RE = re.compile(r"[<>|=][biufc]([0-9]{1,2})\Z")  # dtype.str of what save writes
_ARRAY_KINDS = "biufc"  # bool, int, uint, float, complex: no objects, strings, records
_MAX_CONFIG_BYTES = 64 << 20
# Bytes a weights.npz may hold per array beyond its data: the .npy header
# (numpy reads at most 10,000 bytes of it), zip local and central headers with
# their zip64 extras, plus the member name twice (in _npz_size_limit).
_MEMBER_OVERHEAD = 16 << 10
_HASH_CHUNK = 1 << 20


def _tmp_prefix(name):
    return f".{name}~tmp-"


def _old_name(name):
    return f".{name}~old"


# -- checks -------------------------------------------------------------------


def _check_name(name):
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(f"checkpoint name must be 1-128 characters from letters, digits and "
                         f"'_.+-', not starting with '.', '+' or '-', got {name!r}")
    return name


def _check_key(key):
    if (not isinstance(key, str) or not key or len(key) > 256 or not key.isprintable()
            or "/" in key or "\\" in key or key in (".", "..")):
        raise ValueError(f"array name must be a printable str of 1-256 characters without '/' "
                         f"or '\\', got {key!r}")


def _check_arrays(arrays):
    if not isinstance(arrays, dict):
        raise TypeError(f"arrays: expected a dict name -> array, got {type(arrays).__name__}")
    out = {}
    for key, value in arrays.items():
        _check_key(key)
        arr = check.to_numpy(value, f"arrays[{key!r}]")
        if arr.dtype.kind not in _ARRAY_KINDS:
            raise TypeError(f"arrays[{key!r}]: expected a numeric or bool array, got dtype "
                            f"{arr.dtype} (objects, strings and records go in meta, or nowhere)")
        _check_finite(f"arrays[{key!r}]", arr)
        out[key] = arr
    return out


def _check_finite(what, arr):
    if arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
        bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{what}: {bad} NaN or inf entries (of {arr.size})")


def _clean_json(obj, where):
    """A JSON-only copy of obj (numpy scalars become Python numbers); refuses anything else."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        f = float(obj)
        if not math.isfinite(f):
            raise ValueError(f"meta{where}: JSON cannot hold {f}")
        return f
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"meta{where}: keys must be str (JSON), got {k!r}")
            out[k] = _clean_json(v, f"{where}[{k!r}]")
        return out
    if isinstance(obj, (list, tuple)):
        return [_clean_json(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, np.ndarray):
        raise TypeError(f"meta{where}: arrays go in `arrays` (weights.npz), not in meta")
    raise TypeError(f"meta{where}: expected JSON data (dict, list, str, number, bool, None), "
                    f"got {type(obj).__name__}")


# -- files --------------------------------------------------------------------


def _fsync_dir(path):
    """Make a directory's entries (new files, renames) durable. No-op where unsupported."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_npz(path, arrays):
    """np.savez's format (a stored zip of .npy files), written directly.

    Not np.savez(path, **arrays): keyword names would clash with savez's own
    parameters (an array named "file" or "allow_pickle"), and this way
    allow_pickle=False also holds on the writing side.
    """
    with open(path, "xb") as f:
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for key, arr in arrays.items():
                with zf.open(key + ".npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, arr, allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())


def _write_file(path, data):
    with open(path, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _sha256_fileobj(f):
    h = hashlib.sha256()
    while chunk := f.read(_HASH_CHUNK):
        h.update(chunk)
    return h.hexdigest()


def _open_regular(path):
    """Open a checkpoint file for reading: a regular file, not a symlink, or ValueError."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise ValueError(f"{path}: missing") from None
    except OSError as e:
        raise ValueError(f"{path}: cannot read ({e.strerror or e})") from None
    if stat.S_ISLNK(st.st_mode):
        raise ValueError(f"{path}: is a symbolic link; refusing to follow it (a checkpoint "
                         f"holds its own files)")
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{path}: not a regular file")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) \
        | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:  # replaced between lstat and open
        what = "is a symbolic link" if e.errno == errno.ELOOP else f"cannot read ({e.strerror})"
        raise ValueError(f"{path}: {what}") from None
    f = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
        f.close()
        raise ValueError(f"{path}: not a regular file")
    return f


def recover(run_dir, name):
    """Tidy what an interrupted save of run_dir/name left: put back a lone .name~old, remove
    the rest (stale .name~old, .name~tmp-* directories). `save` does this first; a process
    that owns run_dir can call it at start-up so that a name it may never save again (a
    killed run's "best") does not keep its leftovers."""
    final = os.path.join(run_dir, name)
    old = os.path.join(run_dir, _old_name(name))
    if os.path.isdir(old) and not os.path.islink(old):
        if not os.path.lexists(final):
            os.replace(old, final)  # crashed between the two renames: old is the checkpoint
            _fsync_dir(run_dir)
        else:
            shutil.rmtree(old)  # crashed after the swap: old is stale
    prefix = _tmp_prefix(name)
    for entry in os.listdir(run_dir):
        if entry.startswith(prefix):
            shutil.rmtree(os.path.join(run_dir, entry), ignore_errors=True)


def _check_replaceable(final):
    """Only ever replace (and later delete) a checkpoint directory, never other files."""
    if not os.path.lexists(final):
        return
    if os.path.islink(final) or not os.path.isdir(final):
        raise ValueError(f"{final}: exists and is not a checkpoint directory; not replacing it")
    other = sorted(set(os.listdir(final)) - {WEIGHTS, CONFIG})
    if other:
        raise ValueError(f"{final}: holds files that are not part of a checkpoint "
                         f"({', '.join(other[:5])}); not replacing it")


# -- API ----------------------------------------------------------------------


def save(run_dir, name, arrays, meta=None):
    """Write ``run_dir/name/{weights.npz, config.json}`` atomically.

    Parameters
    ----------
    run_dir : str or path-like
        Created if missing.
    name : str
        One path component, e.g. "best", "last", "step-1000".
    arrays : dict str -> array
        Numeric or bool arrays, finite; stored bit for bit.
    meta : dict or None
        JSON data for config.json (tuples come back as lists, numpy scalars
        as Python numbers). Keys "format", "version", "weights" are reserved.

    Returns
    -------
    path : str
        ``run_dir/name``.

    Raises
    ------
    ValueError, TypeError
        Bad name, arrays or meta; checked before anything is written.
    OSError
        From the file system (disk full, ...), with its errno, naming the
        checkpoint: "cannot save checkpoint RUN/name (No space left on
        device); the previous checkpoint is intact". The previous checkpoint
        is intact on any failure, and the temporary files are removed.
    """
    run_dir = os.fspath(run_dir)
    _check_name(name)
    arrays = _check_arrays(arrays)
    meta = _clean_json({} if meta is None else meta, "")
    if not isinstance(meta, dict):
        raise TypeError(f"meta: expected a dict, got {type(meta).__name__}")
    clash = [k for k in RESERVED if k in meta]
    if clash:
        raise ValueError(f"meta: the keys {clash} are reserved for config.json's own fields")

    os.makedirs(run_dir, exist_ok=True)
    final = os.path.join(run_dir, name)
    old = os.path.join(run_dir, _old_name(name))
    recover(run_dir, name)
    _check_replaceable(final)

    # The sequence (crash at any point leaves a loadable checkpoint):
    #  1. Write tmp/weights.npz and tmp/config.json into a fresh ".name~tmp-*"
    #     directory in run_dir (same file system, so renames are atomic);
    #     fsync both files, then tmp itself: tmp is now a complete checkpoint.
    #     A crash here: run_dir/name is still the old checkpoint; the next
    #     save removes the tmp leftover.
    #  2. rename run_dir/name -> run_dir/.name~old (if there is an old one;
    #     POSIX rename cannot replace a non-empty directory, so the old one
    #     moves aside first). A crash between 2 and 3: run_dir/name is
    #     missing, .name~old is the complete old checkpoint: `load` reads it,
    #     the next `save` renames it back before anything else.
    #  3. rename tmp -> run_dir/name; fsync run_dir (both renames durable).
    #     From here run_dir/name is the complete new checkpoint.
    #  4. Remove .name~old (a crash before this: the next save removes it).
    # An exception in 2 or 3 puts the old checkpoint back and removes tmp.
    tmp = tempfile.mkdtemp(prefix=_tmp_prefix(name), dir=run_dir)
    moved_old, had_old = False, os.path.lexists(final)
    try:
        npz_path = os.path.join(tmp, WEIGHTS)
        _write_npz(npz_path, arrays)
        with open(npz_path, "rb") as f:
            sha = _sha256_fileobj(f)
        config = {"format": FORMAT, "version": VERSION, **meta,
                  "weights": {"file": WEIGHTS, "sha256": sha,
                              "arrays": {k: {"dtype": a.dtype.str, "shape": list(a.shape)}
                                         for k, a in arrays.items()}}}
        text = json.dumps(config, indent=2, allow_nan=False) + "\n"
        _write_file(os.path.join(tmp, CONFIG), text.encode("utf-8"))
        _fsync_dir(tmp)
        if os.path.lexists(final):
            os.replace(final, old)
            moved_old = True
        os.replace(tmp, final)
    except BaseException as e:
        if moved_old and not os.path.lexists(final):
            try:
                os.replace(old, final)
            except OSError:
                pass  # .name~old stays; load reads it and the next save renames it back
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError):  # e.g. a full disk: say what failed and what is left
            msg = (f"cannot save checkpoint {final} ({e.strerror or e})"
                   + ("; the previous checkpoint is intact" if had_old else ""))
            raise (OSError(e.errno, msg) if e.errno is not None else OSError(msg)) from e
        raise
    _fsync_dir(run_dir)
    if moved_old:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _bad(path, problem):
    return ValueError(f"{path}: {problem}")


def _reject_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text):
    value = float(text)
    if not math.isfinite(value):  # 1e999: JSON syntax, but no finite number
        raise ValueError(f"the number {text[:40]} is out of range")
    return value


def _read_config(cfg_path):
    with _open_regular(cfg_path) as f:
        # read(n) allocates n bytes up front: ask for what the file holds, not for the cap
        size = os.fstat(f.fileno()).st_size
        raw = f.read(size + 1) if size <= _MAX_CONFIG_BYTES else b""
    if size > _MAX_CONFIG_BYTES or len(raw) > _MAX_CONFIG_BYTES:
        raise _bad(cfg_path, f"larger than {_MAX_CONFIG_BYTES >> 20} MiB; not a checkpoint config")
    try:
        config = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant,
                            parse_float=_finite_float)
    except UnicodeDecodeError as e:
        raise _bad(cfg_path, f"invalid JSON: not UTF-8 at byte {e.start}") from None
    except (ValueError, RecursionError) as e:
        raise _bad(cfg_path, f"invalid JSON ({e})") from None
    if not isinstance(config, dict):
        raise _bad(cfg_path, f"expected a JSON object, got {type(config).__name__}")
    fmt = config.get("format")
    if fmt != FORMAT:
        what = "no format marker" if fmt is None else f"foreign format marker {fmt!r}"
        raise _bad(cfg_path, f"{what}; expected \"format\": {FORMAT!r} (not an lstm-c checkpoint)")
    version = config.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise _bad(cfg_path, f"\"version\" must be an int >= 1, got {version!r}")
    if version > VERSION:
        raise _bad(cfg_path, f"checkpoint format version {version} is newer than this lstm-c "
                             f"reads (up to {VERSION}); upgrade lstm-c")
    w = config.get("weights")
    ok = (isinstance(w, dict) and w.get("file") == WEIGHTS and isinstance(w.get("sha256"), str)
          and _SHA_RE.match(w["sha256"]) and isinstance(w.get("arrays"), dict))
    if ok:
        for k, info in w["arrays"].items():
            shape = info.get("shape") if isinstance(info, dict) else None
            ok = ok and isinstance(info, dict) and isinstance(info.get("dtype"), str) \
                and isinstance(shape, list) \
                and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
    if not ok:
        raise _bad(cfg_path, "\"weights\" must be {\"file\": \"weights.npz\", \"sha256\": <hex>, "
                             "\"arrays\": {name: {\"dtype\", \"shape\"}}}")
    return config


def _nbytes(info):
    """Data bytes of an array config.json declares (0 for a dtype `save` never writes:
    such an array is refused once its header is read)."""
    m = _PLAIN_DTYPE_RE.match(info["dtype"])
    return math.prod(info["shape"]) * int(m.group(1)) if m else 0


def _npz_size_limit(expected):
    """The most bytes a weights.npz holding the declared arrays can take (as `save` writes it)."""
    return 1024 + sum(_nbytes(info) + _MEMBER_OVERHEAD + 2 * len(key.encode("utf-8", "replace"))
                      for key, info in expected.items())


def _check_members(npz_path, npz, size):
    """Refuse, before reading any array, members that could expand beyond the file."""
    infos = npz.zip.infolist()
    if len(set(npz.files)) != len(npz.files):
        dup = sorted(k for k, n in collections.Counter(npz.files).items() if n > 1)
        raise _bad(npz_path, f"the archive holds an array more than once: {dup[:5]}")
    for i in infos:
        if i.compress_type != zipfile.ZIP_STORED or i.compress_size != i.file_size:
            raise _bad(npz_path, f"member {i.filename!r} is compressed (method "
                                 f"{i.compress_type}); lstm-c stores arrays uncompressed, and a "
                                 f"compressed member could expand without bound (a zip bomb)")
    claimed = sum(i.file_size for i in infos)
    if claimed > size:
        raise _bad(npz_path, f"its members claim {claimed} bytes, more than the file's {size}")


def _check_header(npz_path, npz, key, info):
    """Read array `key`'s .npy header only; refuse it unless it agrees with config.json
    (dtype, shape) and with the size of its member, so reading allocates nothing unexpected."""
    try:
        member = npz.zip.getinfo(key + ".npy")  # as save names it (np.load strips ".npy")
    except KeyError:
        member = npz.zip.getinfo(key)
    try:
        with npz.zip.open(member) as m:
            version = np.lib.format.read_magic(m)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if read_header is None:
                raise ValueError(f".npy format version {version} (lstm-c writes 1.0 or 2.0)")
            shape, _, dtype = read_header(m)
            offset = m.tell()
    except Exception as e:  # noqa: BLE001  not .npy, bad header, bad zip entry, ...
        raise _bad(npz_path, f"array {key!r} cannot be read: {type(e).__name__}: {e}") from None
    if dtype.str != info["dtype"] or list(shape) != info["shape"]:
        raise _bad(npz_path, f"array {key!r} is {dtype.str} {list(shape)}, "
                             f"{CONFIG} says {info['dtype']} {info['shape']}")
    if dtype.kind not in _ARRAY_KINDS:
        raise _bad(npz_path, f"array {key!r} cannot be read: dtype {dtype} is not plain numbers "
                             f"(pickled objects are never loaded)")
    if offset + math.prod(shape) * dtype.itemsize != member.file_size:
        raise _bad(npz_path, f"array {key!r}: its header declares {math.prod(shape)} x "
                             f"{dtype.itemsize} bytes of data after {offset} bytes of header, "
                             f"but its member holds {member.file_size} bytes")


def load(run_dir, name):
    """Read a checkpoint written by `save`.

    Returns
    -------
    arrays : dict str -> np.ndarray
        Bit-identical to what was saved.
    meta : dict
        As saved (after the JSON round trip).

    Raises
    ------
    ValueError
        Naming the path and the problem: missing directory or file, symlink
        or non-regular file, invalid JSON, missing or foreign format marker,
        newer version, weights.npz not matching config.json (corrupt,
        truncated, swapped, larger than its arrays need, compressed members,
        .npy headers that disagree with config.json or with their member's
        size), an array that is not plain data (pickled objects are never
        loaded), NaN or inf in an array, a number too large for a float.
    """
    run_dir = os.fspath(run_dir)
    _check_name(name)
    path = os.path.join(run_dir, name)
    if not os.path.isdir(path):
        old = os.path.join(run_dir, _old_name(name))
        if not os.path.lexists(path) and os.path.isdir(old) and not os.path.islink(old):
            path = old  # a save was interrupted between its two renames; this is the checkpoint
        elif os.path.lexists(path):
            raise _bad(path, "not a checkpoint directory")
        else:
            raise _bad(path, "no such checkpoint (directory missing)")
    cfg_path = os.path.join(path, CONFIG)
    config = _read_config(cfg_path)
    expected = config["weights"]["arrays"]

    npz_path = os.path.join(path, WEIGHTS)
    with _open_regular(npz_path) as f:
        size = os.fstat(f.fileno()).st_size
        limit = _npz_size_limit(expected)
        if size > limit:
            raise _bad(npz_path, f"{size} bytes, more than the arrays its {CONFIG} declares can "
                                 f"take ({limit}); not reading it")
        if _sha256_fileobj(f) != config["weights"]["sha256"]:
            raise _bad(npz_path, f"does not match its {CONFIG} (sha256 differs): the file is "
                                 f"corrupt, truncated or from another save")
        f.seek(0)
        try:
            npz = np.load(f, allow_pickle=False)
        except Exception as e:  # not a zip, truncated central directory, a pickle, ...
            raise _bad(npz_path, f"not a readable npz archive: {type(e).__name__}: {e}") from None
        if not hasattr(npz, "files"):  # a bare .npy array
            raise _bad(npz_path, "not an npz archive (a single .npy array)")
        arrays = {}
        with npz:
            _check_members(npz_path, npz, size)
            files = set(npz.files)
            missing = [k for k in expected if k not in files]
            extra = [k for k in npz.files if k not in expected]
            if missing or extra:
                raise _bad(npz_path, f"arrays differ from {CONFIG}: missing {missing}, "
                                     f"unexpected {extra}")
            for key in expected:
                _check_header(npz_path, npz, key, expected[key])
                try:
                    arrays[key] = npz[key]
                except Exception as e:  # pickled objects, bad header, CRC, EOF, ...
                    raise _bad(npz_path, f"array {key!r} cannot be read: "
                                         f"{type(e).__name__}: {e}") from None
    for key, info in expected.items():
        arr = arrays[key]
        if arr.dtype.str != info["dtype"] or list(arr.shape) != info["shape"]:
            raise _bad(npz_path, f"array {key!r} is {arr.dtype.str} {list(arr.shape)}, "
                                 f"{CONFIG} says {info['dtype']} {info['shape']}")
        if arr.dtype.kind not in _ARRAY_KINDS:
            raise _bad(npz_path, f"array {key!r} has dtype {arr.dtype}, not plain numbers")
        try:
            _check_finite(f"array {key!r}", arr)
        except ValueError as e:
            raise _bad(npz_path, str(e)) from None
    meta = {k: v for k, v in config.items() if k not in RESERVED}
    return arrays, meta


def list_checkpoints(run_dir):
    """Sorted names of the checkpoints in run_dir (including one left only as .name~old)."""
    run_dir = os.fspath(run_dir)
    try:
        entries = os.listdir(run_dir)
    except (FileNotFoundError, NotADirectoryError):
        return []
    names = set()
    for e in entries:
        if e.startswith(".") and e.endswith("~old"):
            n = e[1:-4]
            if _NAME_RE.match(n) and n not in entries \
                    and os.path.isfile(os.path.join(run_dir, e, CONFIG)):
                names.add(n)
        elif _NAME_RE.match(e) and os.path.isfile(os.path.join(run_dir, e, CONFIG)):
            names.add(e)
    return sorted(names)
