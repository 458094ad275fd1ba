"""The model runtime of a process (a worker, or the API, which runs models for
image search and extract): ONNX Runtime sessions, and the shared models that
analytics declare.

Sessions are created once per model and process (ONNX Runtime sessions are
thread-safe for `run`), with an explicit provider list: CUDA first when it
really works on this host, CPU otherwise. ONNX Runtime may list providers that
cannot run here (Azure, or CUDA without its libraries), so "works" is proven
by running a one-node model on it, not by the list of available providers.

A `SharedModel` is what a plugin declares (`AnalyticPlugin.models`): a model
(or a detector and embedder together) loaded once per process and shared by
every pipeline that uses it. A worker warms the models of the installed
analytics at start, reports their state in its runtime report, counts them as a
GPU service while they run on CUDA, and `/metrics` shows the series they declare.
"""

from __future__ import annotations

import base64
import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
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


# --- shared models -------------------------------------------------------------------

CUDA_PROVIDER = "CUDAExecutionProvider"


@dataclass(frozen=True)
class ModelInfoMetric:
    """An info series for /metrics (value 1, one per node): the model's state and
    these fields of its status as labels, after `node_num`."""

    name: str
    documentation: str
    labels: tuple[str, ...]


class SharedModel:
    """A model loaded once per process and shared by the analytics that declare it.

    `warm` loads the model (if not loaded yet), runs it once so the first real
    input does not pay for lazy allocations, and returns its description (JSON
    fields, e.g. `warm_up_seconds`; `provider` says which ONNX Runtime provider
    runs it). The state is not_loaded, warming, ready (with the description) or
    failed (with `error`).
    """

    def __init__(
        self,
        name: str,
        *,
        warm: Callable[[], dict[str, Any]],
        gpu_service: str = "",
        info_metric: ModelInfoMetric | None = None,
        figures: Callable[[], dict[str, Any] | None] | None = None,
        stop: Callable[[float], object] | None = None,
    ) -> None:
        self.name = name  # its key in the runtime report's `models`
        self.gpu_service = gpu_service  # reported under the GPU in /resource_stats while on CUDA
        self.info_metric = info_metric
        self._warm = warm
        # Running figures the report carries beside the state (e.g. a batching runtime's
        # batches, refusals and latency; None while there are none), and what stops the
        # model's own threads at worker shutdown (given a timeout in seconds).
        self._figures = figures
        self._stop = stop
        self._lock = threading.Lock()
        self._status: dict[str, Any] = {"state": "not_loaded"}

    def status(self) -> dict[str, Any]:
        with self._lock:
            status = dict(self._status)
        if self._figures is not None:
            figures = self._figures()
            if figures is not None:
                status["figures"] = figures
        return status

    def stop(self, timeout: float) -> None:
        if self._stop is not None:
            self._stop(timeout)

    def status_set(self, **fields: Any) -> None:
        with self._lock:
            self._status = dict(fields)

    def warm_up(self) -> dict[str, Any]:
        """Load and warm the model now; its status afterwards."""
        self.status_set(state="warming")
        try:
            description = self._warm()
        except Exception as exc:
            logger.exception("%s: warm-up failed", self.name)
            self.status_set(state="failed", error=f"{type(exc).__name__}: {exc}"[:300])
        else:
            self.status_set(state="ready", **description)
        return self.status()

    @property
    def on_gpu(self) -> bool:
        return self.status().get("provider") == CUDA_PROVIDER
