"""Input checks shared by the layers: every message names what was expected and what was given."""

import numbers
import os

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
INT_MAX = 2**31 - 1  # the engine's BLAS takes C ints: T*B, I and 4H must fit in one


def positive_int(name, value):
    """Return value as int; a bool, a float or a number < 1 is refused."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be a positive int, got {value!r} ({type(value).__name__})")
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value}")
    return int(value)


def flag(name, value):
    """Return value as bool; only bools and the ints 0 and 1 are accepted."""
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, numbers.Integral) and value in (0, 1)):
        return bool(value)
    raise TypeError(f"{name} must be a bool, got {value!r} ({type(value).__name__})")


def float_dtype(value):
    """Return np.dtype for float32 or float64 given anything np.dtype takes (or a torch dtype).

    None means float32, torch's default (not NumPy's float64).
    """
    if value is None:
        return FLOAT_DTYPES[0]
    try:
        dt = np.dtype(str(value).replace("torch.", "") if type(value).__module__ == "torch" else value)
    except TypeError:
        dt = None
    # `dt in FLOAT_DTYPES` would be wrong for None: np.dtype("float64") == None is True.
    if dt is None or not any(dt == f for f in FLOAT_DTYPES):
        raise TypeError(f"dtype must be float32 or float64, got {value!r}")
    return dt


def is_float_dtype(value):
    if value is None:
        return False
    try:
        float_dtype(value)
    except TypeError:
        return False
    return not isinstance(value, (bool, np.bool_, numbers.Number))


def to_numpy(value, name):
    """np.asarray that also takes torch tensors that require grad or live on another device."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except Exception as e:  # ragged lists, objects without __array__ ...
        raise TypeError(f"{name}: expected an array, got {type(value).__name__} ({e})") from None


def real_array(value, name, dtype):
    """value as an array (no copy where it is one already) of a kind as_array converts."""
    arr = to_numpy(value, name)
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name}: expected a real numeric array (float or int) to convert "
                        f"to {dtype}, got dtype {arr.dtype}")
    return arr


def as_array(value, name, dtype, shape=None, hint=""):
    """Convert to a C-contiguous array of dtype, once.

    Integers and floats of any width (float16 too) convert, as torch's
    ``.to(dtype)`` does (values beyond the dtype's range become inf); bool,
    complex, object and other kinds are refused with TypeError rather than
    silently cast. A scalar stays 0-D. With `shape`, a wrong shape is refused
    (check_shape) before anything is copied, so that a huge strided or
    zero-stride view is never expanded.
    """
    if type(value) is np.ndarray and value.dtype == dtype and value.flags.c_contiguous:
        if shape is not None:
            check_shape(name, value, shape, hint)
        return value  # already what is asked for: the common case, kept cheap
    arr = real_array(value, name, dtype)
    if shape is not None:
        check_shape(name, arr, shape, hint)
    # Not np.ascontiguousarray, which turns a 0-D array into 1-D (and a message
    # about a scalar into one about shape (1,)).
    return np.asarray(arr, dtype=dtype, order="C")


def check_gate_rows(name, B, hidden_size):
    """ValueError unless a step's gates, B rows of 4 * hidden_size, have C int offsets.

    The engine indexes within one step's (B, 4H) block with C ints (_lstm.pyx),
    so B * 4 * hidden_size must stay at most 2**31 - 1, as its BLAS dimensions do.
    """
    if B * 4 * hidden_size > INT_MAX:
        raise ValueError(f"{name}: expected at most {INT_MAX} gate values per step "
                         f"(B * 4 * hidden_size, the engine's int offsets), got B={B}, "
                         f"hidden_size={hidden_size}")


def physical_memory():
    """This machine's memory in bytes, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def check_memory(what, nbytes):
    """MemoryError, before anything is allocated, when `what` needs more bytes than this machine has.

    Such a request can never succeed, and the allocations that numpy would
    make one after another could each pass and then exhaust the machine.
    """
    total = physical_memory()
    if total is not None and nbytes > total:
        raise MemoryError(f"{what}: at least {nbytes / 2**30:.3g} GiB needed, more than this "
                          f"machine's {total / 2**30:.3g} GiB of memory")


def check_shape(name, arr, expected, hint=""):
    if arr.shape != tuple(expected):
        raise ValueError(f"{name}: expected shape {tuple(expected)}{hint}, got {arr.shape}")


def check_finite(name, arr):
    if not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name}: expected finite values, got {bad} NaN or inf entries")


def load_parameters(params, state_dict, owner, dtype):
    """Copy a state dict into `params` (name -> array) in place, all or nothing.

    The keys must be exactly those of `params`, the shapes equal and the values
    finite; anything np.asarray takes is accepted (torch tensors too).
    """
    if not hasattr(state_dict, "keys"):
        raise TypeError(f"state_dict: expected a mapping of name -> array, "
                        f"got {type(state_dict).__name__}")
    missing = sorted(set(params) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(params), key=repr)  # keys of any type
    if missing or unexpected:
        raise ValueError(f"state_dict keys do not match {owner}: "
                         f"missing {missing}, unexpected {unexpected}")
    new = {}
    for name, param in params.items():
        arr = as_array(state_dict[name], f"state_dict[{name!r}]", dtype, shape=param.shape)
        check_finite(f"state_dict[{name!r}]", arr)
        if any(np.may_share_memory(arr, p) for p in params.values()):
            arr = arr.copy()  # e.g. two parameters swapped: read all before writing any
        new[name] = arr
    for name, arr in new.items():
        params[name][...] = arr
