"""ONNX Runtime sessions shared by every stream of a worker process.

Sessions are created once per model and process (ONNX Runtime sessions are
thread-safe for `run`), with an explicit provider list: CUDA first when it
really works on this host, CPU otherwise. ONNX Runtime may list providers that
cannot run here (Azure, or CUDA without its libraries), so "works" is proven
by running a one-node model on it, not by the list of available providers.
"""

from __future__ import annotations

import base64
import functools
import logging
import threading
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

# A model with one Identity node (float[1] -> float[1]), 69 bytes, used to prove
# that a provider can run a graph on this host.
_PROBE_MODEL = base64.b64decode(
    "CAg6OwoQCgF4EgF5IghJZGVudGl0eRIFcHJvYmVaDwoBeBIKCggIARIECgIIAWIPCgF5EgoKCAgBEgQKAggBQgQKABAN"
)


@functools.lru_cache(maxsize=1)
def cuda_works() -> bool:
    try:
        import numpy as np
        import onnxruntime as ort
    except ImportError:
        return False
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return False
    try:
        options = ort.SessionOptions()
        options.log_severity_level = 3  # missing CUDA libraries are expected on CPU hosts
        session = ort.InferenceSession(_PROBE_MODEL, options, providers=["CUDAExecutionProvider"])
        if session.get_providers()[0] != "CUDAExecutionProvider":
            return False
        session.run(None, {"x": np.array([1.0], dtype=np.float32)})
        return True
    except Exception as exc:
        logger.info("ONNX Runtime's CUDA provider does not work here: %s", exc)
        return False


def providers() -> list[str]:
    """The provider list every session of this process is created with."""
    return ["CUDAExecutionProvider", "CPUExecutionProvider"] if cuda_works() else ["CPUExecutionProvider"]


def run_mode() -> str:
    return "GPU" if cuda_works() else "CPU"


class SessionCache:
    """One session per model key per process, created on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, Any] = {}

    def get(self, key: str, load_model: Callable[[], bytes | str]) -> Any:
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                import onnxruntime as ort

                session = ort.InferenceSession(load_model(), providers=providers())
                logger.info("model %s loaded with %s", key, session.get_providers()[0])
                self._sessions[key] = session
            return session


SESSIONS = SessionCache()
