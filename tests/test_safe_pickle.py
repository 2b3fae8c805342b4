"""Pickled data files (CIFAR's python release) load without running code."""

import os
import pickle

import numpy as np
import pytest

from equinlp.apps.vision.safe_pickle import load_data_pickle
from equinlp.errors import EquinlpError


class Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_arrays_and_containers_load(tmp_path):
    batch = {b"data": np.arange(12, dtype=np.uint8).reshape(2, 6), b"labels": [3, 1], b"batch_label": b"test", "x": 1.5}
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        path = tmp_path / f"batch{protocol}"
        path.write_bytes(pickle.dumps(batch, protocol=protocol))
        back = load_data_pickle(path)
        assert np.array_equal(back[b"data"], batch[b"data"]) and back[b"labels"] == [3, 1] and back["x"] == 1.5


def test_a_crafted_pickle_runs_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({"data": Exploit()}))
    with pytest.raises(EquinlpError, match=r"data_batch_1 is not a plain data pickle \(posix.system is not allowed"):
        load_data_pickle(path)
    assert not (tmp_path / "pwned").exists()


def test_a_crafted_cifar_folder_runs_nothing(tmp_path, monkeypatch):
    """`vision clip --data-dir` reads CIFAR's pickled release through the restricted unpickler."""
    from equinlp.apps.vision.data import cifar_arrays

    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    (folder / "meta").write_bytes(pickle.dumps({"fine_label_names": ["apple"]}))
    (folder / "test").write_bytes(pickle.dumps({"data": Exploit(), "fine_labels": [0]}))
    with pytest.raises(EquinlpError, match="test is not a plain data pickle"):
        cifar_arrays("cifar100", "test", tmp_path)
    assert not (tmp_path / "pwned").exists()
