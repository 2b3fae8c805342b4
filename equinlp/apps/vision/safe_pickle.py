"""Reading pickled datasets without letting them run code (CIFAR's official "python version" is pickled).

``pickle.loads`` calls whatever function a file names, so a crafted file in a ``--data-dir`` could run
anything. :func:`load_data_pickle` unpickles with a whitelist: plain Python containers and numbers come
from the pickle machinery itself, and the only globals admitted are the ones numpy needs to rebuild an
array. Anything else is refused with an error naming the file and the global it asked for.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

from equinlp.errors import EquinlpError

NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"),  # protocol 5
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # how protocol 2 writes bytes (and numpy's raw data) from Python 3: text to bytes, no more
}


class _DataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in NUMPY_GLOBALS:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a data file")
        return super().find_class(module, name)


def load_data_pickle(path: str | Path, encoding: str = "latin1") -> Any:
    """The content of a pickled data file (containers, numbers, strings, numpy arrays), never running code."""
    path = Path(path)
    try:
        return _DataUnpickler(io.BytesIO(path.read_bytes()), encoding=encoding).load()
    except OSError as error:
        raise EquinlpError(f"{path}: {error.strerror}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
        raise EquinlpError(f"{path} is not a plain data pickle ({error}); refusing to load it") from None
