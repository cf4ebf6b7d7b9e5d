"""The small protocols models implement, and lazy, thread-safe onnxruntime sessions."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from photosearch.errors import DeviceError, ModelError


class ImageEncoder(Protocol):
    """Turns preprocessed pixel batches into L2-normalized embeddings."""

    image_size: int
    embed_dim: int

    def preprocess(self, image: Any) -> np.ndarray:
        """One upright image as a (3, S, S) float32 array ready for ``encode_pixels``."""

    def encode_pixels(self, pixels: np.ndarray, normalize: bool = True) -> np.ndarray:
        """Embeddings, one row per image, of a (N, 3, S, S) pixel batch; L2-normalized when ``normalize``."""


class TextEncoder(Protocol):
    """Turns texts into embeddings in the same space as an ImageEncoder's."""

    embed_dim: int

    def encode_text(self, texts: list[str], normalize: bool = True) -> np.ndarray:
        """Embeddings, one row per text; L2-normalized when ``normalize``."""


def default_threads() -> int:
    """Inference thread count: ``$PHOTOSEARCH_THREADS`` if a positive integer, else the CPUs this process may use."""
    value = os.environ.get("PHOTOSEARCH_THREADS")
    if value and value.isdigit() and int(value) > 0:
        return int(value)
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))


def cuda_available() -> str | None:
    """None if onnxruntime can offer its CUDA provider here; else why not (one line)."""
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return ("this onnxruntime has no CUDA provider: install the GPU build with "
                "`pip install 'photosearch[gpu]'` (onnxruntime-gpu, in place of onnxruntime)")
    return None


_PRELOADED: list[bool] = []


def _preload_cuda() -> None:
    """Load the CUDA and cuDNN libraries that pip installs as nvidia-* packages (onnxruntime-gpu's
    ``[cuda,cudnn]`` extras), which the dynamic loader would not find by itself; once per process."""
    if _PRELOADED:
        return
    _PRELOADED.append(True)
    import onnxruntime as ort

    preload = getattr(ort, "preload_dlls", None)  # onnxruntime >= 1.21
    if preload is not None:
        try:
            preload()
        except Exception:  # noqa: BLE001 - libraries on the loader's path still work; a failure shows at load
            pass


def cuda_providers() -> list[Any]:
    """The provider list of a CUDA session: CUDA first (its own memory arena grows as needed), CPU
    for the few ops CUDA lacks. DeviceError when this onnxruntime has no CUDA provider."""
    why = cuda_available()
    if why is not None:
        raise DeviceError(f"--device cuda: {why}")
    _preload_cuda()
    return [("CUDAExecutionProvider", {"arena_extend_strategy": "kSameAsRequested"}), "CPUExecutionProvider"]


class LazySession:
    """An onnxruntime InferenceSession created on first use (or injected, e.g. by tests)."""

    def __init__(self, path: Path, *, threads: int | None = None, session: Any = None, low_memory: bool = False,
                 device: str = "cpu") -> None:
        self.path = path
        self.threads = threads
        self.low_memory = low_memory
        self.device = device
        self._session = session
        self._lock = threading.Lock()

    def get(self) -> Any:
        """The session, created on first call (thread-safe)."""
        if self._session is None:
            with self._lock:
                if self._session is None:
                    self._session = self._create()
        return self._session

    def _create(self) -> Any:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads or default_threads()
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        if self.low_memory:
            # Query path (one small batch): the file was optimized when it was installed, and
            # pre-packing weights costs ~140 ms at load to save ~10 ms per run, and would copy
            # the memory-mapped weights into private memory.
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            opts.add_session_config_entry("session.disable_prepacking", "1")
        else:
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            # While indexing, decode threads share the cores: idle inference threads must sleep,
            # not spin (measured: +4% photos/s end to end on 2 cores, benchmarks/RESULTS.md).
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = cuda_providers() if self.device == "cuda" else ["CPUExecutionProvider"]
        try:
            session = ort.InferenceSession(str(self.path), sess_options=opts, providers=providers)
        except Exception as exc:
            raise ModelError(f"cannot load model file {self.path}: {str(exc).splitlines()[0][:200]}") from None
        if self.device == "cuda" and "CUDAExecutionProvider" not in session.get_providers():
            # onnxruntime falls back to the CPU silently when the CUDA libraries do not load.
            raise DeviceError(f"the CUDA provider did not load for {self.path.name} (CUDA or cuDNN libraries "
                              f"missing, or no GPU): index with `--device cpu`")
        return session

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """Run the session on ``feeds`` and return its first output."""
        return self.get().run(None, feeds)[0]

    def close(self) -> None:
        """Drop the session; the next ``get`` creates it again."""
        self._session = None
