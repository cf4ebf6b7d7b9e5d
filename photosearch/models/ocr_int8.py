"""The OCR recognizer with int8 convolutions, made at install and kept only when it reads as fp32 does.

Recognition is most of OCR's cost on screenshots and documents (twenty lines cost four times the
detection), and 69% of it is convolutions. onnxruntime's dynamic quantization leaves convolutions
slow on CPUs without VNNI (``ConvInteger``), so the recognizer is quantized statically: weights
int8 per output channel, activations uint8 with ranges calibrated on generated text lines, in QDQ
form (which needs opset 13: the wheel's file is opset 11 and is converted first). Measured
(benchmarks/RESULTS.md): 1.5x less CPU per screenshot, the same words read on ../shared/data/ocr.

The check reads other generated lines with both recognizers; the int8 file is kept only when their
readings differ by at most :data:`MAX_CHAR_DIFF` of the characters (``ocr.json`` records the
figures, or the reason it was dropped). The detector stays fp32: quantized the same way it found
different boxes for 9% of the characters for an 8% gain.

The quantized graph's GELUs are then made single nodes (:func:`fuse_gelu`): onnxruntime fuses the
five operators of each into one in a float graph, but not between the QDQ nodes, where they cost
a fifth of the recognizer's time. The fused node computes the same function: readings identical,
bit for bit. So is its CTC head made one Gemm (:func:`fuse_head`): its MatMul over 18,708
classes and the bias Add after it were two passes over the largest tensor of the graph.
"""

from __future__ import annotations

import logging
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from photosearch.models.edits import edit_distance

#: The recognizer's input for a batch of line crops (models/ocr.py ``rec_input``).
MakeInput = Callable[[list[np.ndarray]], np.ndarray]
#: Read line crops with the fp32 (False) or the int8 (True) recognizer: [(text, confidence)].
ReadCrops = Callable[[list[np.ndarray], bool], list[tuple[str, float]]]

#: Readings of the int8 recognizer may differ from fp32's by at most this share of characters.
MAX_CHAR_DIFF = 0.01
CALIBRATION_LINES, CHECK_LINES = 32, 48
_WORDS = ("the quick brown fox jumps over a lazy dog Invoice TOTAL 12.50 EUR wifi password: Xk7#p2 Station "
          "9:41 Meeting room B-204 receipt garage 2024-06-01 Hello world Café Straße 42 % (call) +33 1 23 45 67 "
          "Ticket No. 0815 Abfahrt Gleis 7 Summer holidays #beach").split()
# In one process the same pinned file is quantized once (a test suite installs it many times).
_made: dict[str, tuple[bytes, dict[str, Any]]] = {}
_lock = threading.Lock()


def text_lines(seed: int, n: int) -> list[tuple[str, np.ndarray]]:
    """``n`` generated text lines (text, RGB pixels): a few words in Pillow's own font at 16-60 px,
    dark on light or light on dark, some on a tinted or noisy ground."""
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        size = int(rng.integers(16, 61))
        font = ImageFont.load_default(size=size)
        text = " ".join(str(w) for w in rng.choice(_WORDS, int(rng.integers(1, 7))))
        fg, bg = (20, 20, 20), tuple(int(v) for v in rng.integers(200, 256, 3))
        if rng.random() < 0.3:
            fg, bg = (240, 240, 240), tuple(int(v) for v in rng.integers(0, 80, 3))
        im = Image.new("RGB", (int(font.getlength(text)) + size, int(size * 1.4)), bg)
        ImageDraw.Draw(im).text((size // 2, size // 5), text, fill=fg, font=font)
        pixels = np.asarray(im).astype(np.int16)
        if rng.random() < 0.3:
            pixels = pixels + rng.normal(0, 8, pixels.shape).astype(np.int16)
        out.append((text, np.clip(pixels, 0, 255).astype(np.uint8)))
    return out


def quantize_recognizer(src: Path, dest: Path, make_input: MakeInput, *, fuse: bool = True) -> int:
    """Write ``src``'s static int8 version (QDQ, per-channel convolutions, GELUs fused unless
    ``fuse`` is false) to ``dest``; the number of GELUs fused."""
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model = onnx.load(str(src))
    name = model.graph.input[0].name
    lines = [px for _, px in text_lines(0, CALIBRATION_LINES)]
    batches = [make_input(lines[i:i + 8]) for i in range(0, len(lines), 8)]

    class Lines(CalibrationDataReader):
        def __init__(self) -> None:
            self._left = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self._left, None)
            return None if x is None else {name: x}

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)   # the quantizer logs hints at WARNING
    try:
        with tempfile.TemporaryDirectory(prefix="ocr-int8-", dir=dest.parent) as work:
            opset13, pre = Path(work) / "rec13.onnx", Path(work) / "rec_pre.onnx"
            onnx.save(version_converter.convert_version(model, 13), str(opset13))
            quant_pre_process(str(opset13), str(pre), skip_symbolic_shape=True)
            quantize_static(str(pre), str(dest), Lines(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            op_types_to_quantize=["Conv"])
    finally:
        root.setLevel(level)
    return fuse_gelu_file(dest) if fuse else 0


def fuse_gelu(model: Any) -> int:
    """Make each GELU of ``model`` (an ``onnx.ModelProto``), written out as ``x / sqrt(2) -> Erf ->
    + 1 -> * x -> * 0.5``, one ``com.microsoft`` Gelu node; the number fused. ``x`` may reach the
    two ends through two DequantizeLinear nodes of one quantized tensor (the QDQ form), which is
    what keeps onnxruntime from fusing them itself."""
    from onnx import helper, numpy_helper

    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}

    def constant(name: str) -> float | None:
        node = producer.get(name)
        value = constants.get(name)
        if value is None and node is not None and node.op_type == "Constant":
            value = numpy_helper.to_array(node.attribute[0].t)
        return float(value) if value is not None and value.size == 1 else None

    def source(name: str) -> tuple[str, ...]:
        node = producer.get(name)   # two dequantizations of one tensor are one value
        return ("dq", *node.input) if node is not None and node.op_type == "DequantizeLinear" else ("t", name)

    def only_consumer(name: str, op: str) -> Any:
        nodes = consumers.get(name, [])
        return nodes[0] if len(nodes) == 1 and nodes[0].op_type == op else None

    outputs = {o.name for o in graph.output}
    replaced: dict[int, Any] = {}
    dropped: set[int] = set()
    for erf in graph.node:
        if erf.op_type != "Erf":
            continue
        div = producer.get(erf.input[0])
        if div is None or div.op_type != "Div" or not _near(constant(div.input[1]), 2 ** 0.5):
            continue
        add = only_consumer(erf.output[0], "Add")
        mul = add and only_consumer(add.output[0], "Mul")
        half = mul and only_consumer(mul.output[0], "Mul")
        if not half or not only_consumer(div.output[0], "Erf") or outputs & {erf.output[0], add.output[0],
                                                                              mul.output[0], div.output[0]}:
            continue
        one = [i for i in add.input if i != erf.output[0]]
        x = [i for i in mul.input if i != add.output[0]]
        k = [i for i in half.input if i != mul.output[0]]
        if (len(one) != 1 or not _near(constant(one[0]), 1.0) or len(x) != 1 or source(x[0]) != source(div.input[0])
                or len(k) != 1 or not _near(constant(k[0]), 0.5)):
            continue
        dropped |= {id(div), id(erf), id(add), id(mul)}
        replaced[id(half)] = helper.make_node("Gelu", [div.input[0]], list(half.output), name=f"{div.name}/gelu",
                                              domain="com.microsoft")
    if not replaced:
        return 0
    nodes = [replaced.get(id(n), n) for n in graph.node if id(n) not in dropped]
    used = {i for n in nodes for i in n.input} | outputs
    # The dequantization that fed only the dropped multiplication goes with it.
    nodes = [n for n in nodes if n.op_type not in ("DequantizeLinear", "Constant") or any(o in used for o in n.output)]
    del graph.node[:]
    graph.node.extend(nodes)
    used = {i for n in nodes for i in n.input}
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return len(replaced)


def fuse_head(model: Any) -> bool:
    """Make the recognizer's CTC head (``MatMul(x, W) + b`` over every time step of every line,
    then Softmax) one Gemm with the bias, on the steps flattened to rows: onnxruntime fuses a
    MatMul and an Add into a Gemm only for 2-D inputs, so the 3-D head wrote its 18,708-class
    logits twice. The same probabilities (the Gemm adds the bias to the same sums); True when
    the graph had such a head."""
    from onnx import TensorProto, helper

    graph = model.graph
    producer = {out: node for node in graph.node for out in node.output}
    weights = {t.name: t for t in graph.initializer}
    softmax = producer.get(graph.output[0].name)
    add = softmax is not None and softmax.op_type == "Softmax" and producer.get(softmax.input[0])
    matmul = add and add.op_type == "Add" and producer.get(add.input[0])
    if not matmul or matmul.op_type != "MatMul" or matmul.input[1] not in weights or add.input[1] not in weights:
        return False
    readers = [i for n in graph.node for i in n.input]
    if readers.count(matmul.output[0]) != 1 or readers.count(add.output[0]) != 1:
        return False
    w, b = weights[matmul.input[1]], weights[add.input[1]]
    if len(w.dims) != 2 or list(b.dims) != [w.dims[1]]:
        return False
    x = matmul.input[0]

    def const(name: str, values: list[int]) -> Any:
        return helper.make_node("Constant", [], [name], value=helper.make_tensor(name + "/v", TensorProto.INT64,
                                                                                  [len(values)], values))

    head = [const("ctc_head/rows", [-1, int(w.dims[0])]),
            helper.make_node("Reshape", [x, "ctc_head/rows"], ["ctc_head/x"]),
            helper.make_node("Gemm", ["ctc_head/x", matmul.input[1], add.input[1]], ["ctc_head/logits"]),
            helper.make_node("Shape", [x], ["ctc_head/shape"]),
            const("ctc_head/zero", [0]), const("ctc_head/two", [2]), const("ctc_head/last", [-1]),
            helper.make_node("Slice", ["ctc_head/shape", "ctc_head/zero", "ctc_head/two"], ["ctc_head/steps"]),
            helper.make_node("Concat", ["ctc_head/steps", "ctc_head/last"], ["ctc_head/shape3"], axis=0),
            helper.make_node("Reshape", ["ctc_head/logits", "ctc_head/shape3"], list(add.output))]
    nodes = []
    for node in graph.node:
        if node is matmul:
            continue
        nodes.extend(head if node is add else [node])
    del graph.node[:]
    graph.node.extend(nodes)
    return True


def fuse_head_file(path: Path) -> bool:
    """:func:`fuse_head` on an ONNX file, replaced atomically when the head was fused."""
    return bool(_edit_file(path, fuse_head))


def fuse_gelu_file(path: Path) -> int:
    """:func:`fuse_gelu` on an ONNX file, replaced atomically when anything was fused."""
    return int(_edit_file(path, fuse_gelu))


def _edit_file(path: Path, edit: Callable[[Any], Any]) -> Any:
    """``edit`` applied to the model in ``path``, the file replaced atomically when it says it
    changed something (a true result, which is returned)."""
    import onnx

    from photosearch.files import write_atomic

    model = onnx.load(str(path))
    changed = edit(model)
    if changed:
        write_atomic(path, model.SerializeToString())
    return changed


def _near(value: float | None, want: float) -> bool:
    return value is not None and abs(value - want) <= 1e-3 * abs(want)


def check_recognizer(read: ReadCrops) -> dict[str, Any]:
    """Read :data:`CHECK_LINES` generated lines (not the calibration ones) with the fp32 and the
    int8 recognizer; ``passed`` when their readings differ by at most MAX_CHAR_DIFF."""
    crops = [px for _, px in text_lines(1, CHECK_LINES)]
    fp32, int8 = read(crops, False), read(crops, True)
    chars = sum(len(t) for t, _ in fp32)
    diff = sum(edit_distance(a, b) for (a, _), (b, _) in zip(fp32, int8)) / max(1, chars)
    same = sum(a == b for (a, _), (b, _) in zip(fp32, int8))
    out = {"passed": diff <= MAX_CHAR_DIFF, "lines": len(crops), "same_lines": same, "char_diff": round(diff, 4)}
    if not out["passed"]:
        out["reason"] = (f"the int8 recognizer reads {diff:.1%} of the characters differently from fp32 "
                         f"(at most {MAX_CHAR_DIFF:.0%})")
    return out


def add_int8_recognizer(src: Path, dest: Path, make_input: MakeInput, read: ReadCrops, sha256: str,
                        say: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Make the int8 version of the recognizer ``src`` (whose checked SHA-256 is ``sha256``) at
    ``dest`` and check it (``read`` reads with either); the check's record for ``ocr.json``. A
    recognizer that fails (or cannot be made) is removed, and fp32 is used."""
    say = say or (lambda _m: None)
    key = sha256
    with _lock:
        if key in _made:
            data, result = _made[key]
            if data:
                dest.write_bytes(data)
            return dict(result)
        say("making the int8 OCR recognizer (static quantization, checked against fp32)")
        try:
            fused = quantize_recognizer(src, dest, make_input)
            result = {**check_recognizer(read), "fused_gelus": fused, "fused_head": fuse_head_file(dest)}
        except Exception as exc:  # noqa: BLE001 - an onnx/onnxruntime refusal of any kind: fp32 stays
            result = {"passed": False, "reason": f"cannot make the int8 recognizer: "
                                                 f"{(str(exc).splitlines() or [type(exc).__name__])[0][:200]}"}
        if result["passed"]:
            say(f"int8 OCR recognizer: {result['same_lines']} of {result['lines']} check lines read alike, "
                f"{result['char_diff']:.2%} of characters differ")
        else:
            dest.unlink(missing_ok=True)
            say(f"OCR recognizer kept in fp32: {result['reason']}")
        _made[key] = (dest.read_bytes() if result["passed"] else b"", dict(result))
        return result


__all__ = ["add_int8_recognizer", "check_recognizer", "quantize_recognizer", "fuse_gelu", "fuse_gelu_file", "text_lines", "MAX_CHAR_DIFF"]
