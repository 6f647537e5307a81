"""Input checks shared by the layers: every message names what was expected and what was given."""

import numbers

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


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


def as_array(value, name, dtype):
    """Convert to a C-contiguous array of dtype, once.

    Integers and floats of any width convert; bool, complex, object and other
    kinds are refused rather than silently cast.
    """
    if type(value) is np.ndarray and value.dtype == dtype and value.flags.c_contiguous:
        return value  # already what is asked for: the common case, kept cheap
    arr = to_numpy(value, name)
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name}: expected a real numeric array (float or int) to convert "
                        f"to {dtype}, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=dtype)


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
    unexpected = sorted(set(state_dict) - set(params))
    if missing or unexpected:
        raise ValueError(f"state_dict keys do not match {owner}: "
                         f"missing {missing}, unexpected {unexpected}")
    new = {}
    for name, param in params.items():
        arr = as_array(state_dict[name], f"state_dict[{name!r}]", dtype)
        check_shape(f"state_dict[{name!r}]", arr, param.shape)
        check_finite(f"state_dict[{name!r}]", arr)
        new[name] = arr
    for name, arr in new.items():
        params[name][...] = arr
