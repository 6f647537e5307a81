"""lstm-c: a fast LSTM for Python.

A Cython + BLAS engine behind a NumPy API that mirrors ``torch.nn.LSTM``:
same names, shapes, gate order (i, f, g, o) and parameter layout, so weights
move between the two unchanged. ``backend="numpy"`` runs the plain NumPy
reference instead, the oracle the engine is tested against.
"""

from importlib.metadata import PackageNotFoundError, version

from lstm_c._threads import get_num_threads, set_num_threads
from lstm_c.estimators import LSTMClassifier, LSTMRegressor, NotFittedError
from lstm_c.layers import LSTM, LSTMCell
from lstm_c import interop  # converters; imports no torch, keras or onnx until used

try:
    __version__ = version("lstm-c")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

__all__ = ["LSTM", "LSTMCell", "LSTMRegressor", "LSTMClassifier", "NotFittedError", "interop",
           "get_num_threads", "set_num_threads", "__version__"]
