"""Faster copies of pinned ONNX files, made at install beside the originals and checked to
compute what the originals compute.

- :func:`faster_copy`: SFace lists its weights among its graph inputs, so onnxruntime can
  neither fold its batch norms into the convolutions nor prepack them; and its PRelus, half of
  its time in onnxruntime, are rewritten as operators that run beside the convolutions in
  onnxruntime's blocked layout, computing the same values (up to the rounding of fused sums).
- :func:`any_input_size`: YuNet pins a 640x640 input that its graph does not need, so that it
  can run on onnxruntime (40% less CPU than OpenCV's DNN) at each photo's own size.
- :func:`flush_denormals`: PP-OCRv6's detector holds 256k weights below float32's smallest normal
  number (1.2e-38; 63% of one convolution's), and on some CPUs every multiplication by one takes
  a slow microcode path: measured on a Xeon with AVX-512, the detection of one photo took 3.3x the
  CPU of the same graph with those weights set to 0 (benchmarks/RESULTS.md). A product with such a
  weight is below 1e-36 of its activation, far under float32's rounding of the sums it joins, so
  the outputs are the same bit for bit (tested on real photos).

The pinned files stay as they were fetched (their SHA-256 still check); the engines load the copy
when it is there. :func:`refresh_spec` makes today's copies for a model installed before.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def _outputs(model: str | bytes, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
    return np.asarray(sess.run(None, {sess.get_inputs()[0].name: x})[0])


def _place(model: Any, src: Path, dest: Path, probe: np.ndarray, *, atol: float, rtol: float = 0.0) -> bool:
    """Write ``model`` to ``dest`` (atomically: an engine may be loading the folder) if its output
    on ``probe`` is the original's within ``atol`` (+ ``rtol``); otherwise nothing is written and
    the engine keeps using the original file."""
    from photosearch.files import write_atomic

    data = model.SerializeToString()
    if not np.allclose(_outputs(str(src), probe), _outputs(data, probe), rtol=rtol, atol=atol):
        return False
    write_atomic(dest, data)
    return True


def refresh_spec(spec_file: Path, spec: dict[str, Any], make: Callable[[], dict[str, Any]]) -> None:
    """Bring a model installed by an earlier version up to date, once: ``make`` writes today's
    copies and returns their records, which are merged into ``spec`` and saved to ``spec_file``.
    A read-only model folder is left as it is (nothing is tried at every load); a failure leaves
    the engine running on what it had."""
    import json
    import os

    from photosearch.files import write_atomic

    if not os.access(spec_file.parent, os.W_OK):
        return
    try:
        spec.update(make())
        write_atomic(spec_file, json.dumps(spec, indent=2))
    except Exception:  # noqa: BLE001, S110 - an unreadable graph or a full disk: it runs as it did
        pass


#: How :func:`faster_copy` writes PRelus. A copy recorded with another form (or none: the
#: ``Max``/``Min`` form of earlier versions) is made again at the engine's next load.
PRELU_FORM = "relu-batchnorm"


def prelu_unrolled(model: Any) -> int:
    """Write each per-channel ``PRelu(x, slope)`` of ``model`` (an ``onnx.ModelProto``) as
    ``r = Relu(x)``, ``n = x + (-1) * r`` (that is, ``Min(x, 0)``) and ``r + slope * n``, the two
    per-channel products as BatchNormalization (zero mean and bias, unit variance, epsilon 0);
    the number rewritten. onnxruntime's PRelu branches on every value's sign (half of SFace's
    time); written with Max and Min instead, every convolution's output left onnxruntime's
    blocked (NCHWc) layout and came back (15% of SFace's time). Relu, Add and BatchNormalization
    stay in that layout beside the convolutions, which absorb them: 14.0 -> 10.6 ms a face
    (benchmarks/RESULTS.md, session 18). Each step is exact (``x - Relu(x)`` is 0 or x, the
    result x or slope * x); only onnxruntime's fused sums round differently (1e-7 measured)."""
    from onnx import helper, numpy_helper

    graph = model.graph
    weights = {i.name: i for i in graph.initializer}
    nodes, added, count = [], [], 0
    for node in graph.node:
        slope = weights.get(node.input[1]) if node.op_type == "PRelu" and len(node.input) == 2 else None
        values = numpy_helper.to_array(slope).astype(np.float32).reshape(-1) if slope is not None else None
        if values is None or values.size < 2:  # not a per-channel slope held in the file: as it is
            nodes.append(node)
            continue
        x = node.input[0]
        p = f"prelu{count}/"
        count += 1
        c = values.size
        for name, arr in ((p + "minus_one", -np.ones(c, np.float32)), (p + "slope", values),
                          (p + "zero", np.zeros(c, np.float32)), (p + "one", np.ones(c, np.float32))):
            added.append(numpy_helper.from_array(arr, name))
        zero, one = p + "zero", p + "one"
        nodes += [helper.make_node("Relu", [x], [p + "pos"]),
                  helper.make_node("BatchNormalization", [p + "pos", p + "minus_one", zero, zero, one], [p + "minus_pos"],
                                   epsilon=0.0),
                  helper.make_node("Add", [x, p + "minus_pos"], [p + "neg"]),
                  helper.make_node("BatchNormalization", [p + "neg", p + "slope", zero, zero, one], [p + "scaled"],
                                   epsilon=0.0),
                  helper.make_node("Add", [p + "pos", p + "scaled"], list(node.output))]
    if count:
        graph.initializer.extend(added)
        del graph.node[:]
        graph.node.extend(nodes)
    return count


def faster_copy(src: Path, dest: Path, probe: np.ndarray) -> dict[str, Any]:
    """Write ``src`` with its weights out of the graph inputs (so onnxruntime can fold and
    prepack them) and its PRelus as :func:`prelu_unrolled`; kept only if its output on ``probe``
    matches the original's (then ``file`` is ``dest``'s name, else None)."""
    import onnx

    model = onnx.load(str(src))
    weights = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    prelus = prelu_unrolled(model)
    kept = _place(model, src, dest, probe, atol=1e-4, rtol=1e-5)
    return {"file": dest.name if kept else None, "prelus_rewritten": prelus if kept else 0, "prelu_form": PRELU_FORM}


def any_input_size(src: Path, dest: Path, probe: np.ndarray) -> dict[str, Any]:
    """Write ``src`` with its first input's height and width (and its outputs' second axis) left
    free: YuNet's file pins 640x640 though its reshapes and resizes take any size, and
    onnxruntime checks the pinned shape. Kept only if its output on ``probe`` is the
    original's (``file`` is then ``dest``'s name, else None)."""
    import onnx

    model = onnx.load(str(src))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    for out in model.graph.output:
        shape = out.type.tensor_type.shape
        if len(shape.dim) >= 2:
            shape.dim[1].dim_param = "anchors"
    del model.graph.value_info[:]
    return {"file": dest.name if _place(model, src, dest, probe, atol=1e-4) else None}


def flush_denormals(src: Path, dest: Path, probe: np.ndarray) -> int:
    """Write ``src`` with its denormal float32 weights set to 0 and return how many there were.
    Nothing is written when there are none, nor when the copy's output on ``probe`` is not the
    original's to 1e-5 (then 0 is returned)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    tiny = np.finfo(np.float32).tiny
    count = 0
    for init in model.graph.initializer:
        a = numpy_helper.to_array(init)
        if a.dtype != np.float32:
            continue
        small = (a != 0) & (np.abs(a) < tiny)
        if small.any():
            count += int(small.sum())
            init.CopyFrom(numpy_helper.from_array(np.where(small, np.float32(0), a).astype(np.float32), init.name))
    if not count:
        return 0
    return count if _place(model, src, dest, probe, atol=1e-5) else 0


__all__ = ["PRELU_FORM", "any_input_size", "faster_copy", "flush_denormals", "prelu_unrolled", "refresh_spec"]
