"""Backend selection: CuPy when a CUDA device is usable, NumPy otherwise.

`get_backend("auto" | "cpu" | "cuda")` returns a `Backend`, a small wrapper around the
array module (`xp`) with explicit host/device transfers. CuPy is imported lazily and only
here; a machine without cupy, or with cupy but no driver or device, gets the CPU backend
from "auto" and a `BackendUnavailable` that says why from "cuda".
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from kernels.errors import BackendUnavailable, InvalidKernelInput

BACKEND_NAMES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class Backend:
    """An array module (`numpy` or `cupy`) and the operations kernels need around it."""

    name: str
    xp: ModuleType

    @property
    def is_cuda(self) -> bool:
        return self.name == "cuda"

    def from_host(self, a: Any) -> Any:
        """The array on this backend's device (no copy when it is already there)."""
        return self.xp.asarray(a)

    def to_host(self, a: Any) -> np.ndarray:
        """A NumPy array with the same values (no copy for a NumPy input)."""
        if self.is_cuda:
            return self.xp.asnumpy(a)
        return np.asarray(a)

    def synchronize(self) -> None:
        """Wait for queued device work (for timing); a no-op on the CPU."""
        if self.is_cuda:
            self.xp.cuda.get_current_stream().synchronize()

    def describe(self) -> str:
        """A human-readable name of the device, for logs and benchmarks."""
        if not self.is_cuda:
            return "cpu (numpy " + np.__version__ + ")"
        props = self.xp.cuda.runtime.getDeviceProperties(self.xp.cuda.Device().id)
        gpu = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
        return f"cuda ({gpu}, cupy {self.xp.__version__})"


CPU = Backend("cpu", np)


@functools.cache
def _probe_cuda() -> tuple[ModuleType | None, str]:
    """(cupy, "") when a CUDA device is usable, else (None, the reason)."""
    try:
        import cupy
    except ImportError as exc:
        return None, (f"cupy is not installed ({exc}); install it with "
                      "pip install 'jevons[cuda]' on a machine with an NVIDIA driver")
    try:
        count = int(cupy.cuda.runtime.getDeviceCount())
    except RuntimeError as exc:  # CUDARuntimeError: no driver, driver too old, no device
        return None, f"cupy is installed but CUDA is not usable here: {exc}"
    if count < 1:
        return None, "cupy is installed but the CUDA runtime reports 0 devices"
    return cupy, ""


def cuda_unavailable_reason() -> str | None:
    """None when a CUDA device is usable, else why not (the probe runs once per process)."""
    module, reason = _probe_cuda()
    return None if module is not None else reason


def is_cuda_available() -> bool:
    return cuda_unavailable_reason() is None


def get_backend(name: str = "auto") -> Backend:
    """The backend for `name`: "cpu" (NumPy), "cuda" (CuPy, or `BackendUnavailable`),
    or "auto" (CUDA when usable, else CPU)."""
    if name not in BACKEND_NAMES:
        raise InvalidKernelInput(
            f"unknown backend {name!r}: expected one of {', '.join(BACKEND_NAMES)}")
    if name == "cpu":
        return CPU
    module, reason = _probe_cuda()
    if module is not None:
        return Backend("cuda", module)
    if name == "auto":
        return CPU
    raise BackendUnavailable(f"backend 'cuda' is unavailable: {reason}; "
                             "use backend 'cpu' or 'auto' to run on NumPy")
