"""Put on PYTHONPATH by tests/test_no_torch.py: this interpreter behaves as if torch, torchvision
and open_clip were not installed (as after a plain `pip install photosearch`)."""

import sys

_ABSENT = {"torch", "torchvision", "open_clip", "onnxscript"}


class _Absent:
    def find_spec(self, name, path=None, target=None):  # noqa: ANN001, ANN201 - the finder protocol
        if name.split(".")[0] in _ABSENT:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _Absent())
