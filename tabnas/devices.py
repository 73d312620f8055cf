"""The one place that looks at hardware.

Everything else receives a :class:`DeviceConfig` and never asks torch about CUDA itself.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import torch

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeviceConfig:
    """How to run on the resolved device.

    Attributes:
        device: where tensors and modules live.
        amp_dtype: the autocast dtype for forward passes, or ``None`` for full precision.
        pin_memory: pin host tensors before copying them to the device.
        non_blocking: issue host-to-device copies asynchronously.
        eval_batch_size: rows per forward pass when predicting or scoring.
    """

    device: torch.device
    amp_dtype: torch.dtype | None
    pin_memory: bool
    non_blocking: bool
    eval_batch_size: int

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed precision on CUDA (bf16), nothing on the CPU."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.amp_dtype)

    def to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        if tensor.device == self.device:
            return tensor
        if self.pin_memory and tensor.device.type == "cpu":
            tensor = tensor.pin_memory()
        return tensor.to(self.device, non_blocking=self.non_blocking)


def resolve_device(
    device: str | torch.device = "auto",
    *,
    cuda_available: bool | None = None,
    cuda_device_count: int | None = None,
) -> DeviceConfig:
    """Turn a user's ``device`` option into a :class:`DeviceConfig`.

    ``"auto"`` picks the first CUDA device when one is present and the CPU otherwise
    (also for small tables: on an H100 the fast preset fitted 491-, 640- and 3,458-row
    tables 16–36 % sooner than on the CPU, docs/benchmarks/perf/cuda-h100).
    ``cuda_available`` and ``cuda_device_count`` override the hardware probe (for tests of
    the resolution logic); a device index is checked against the count when it is known.
    """
    if cuda_available is None:
        cuda_available = torch.cuda.is_available()
        if cuda_device_count is None and cuda_available:
            cuda_device_count = torch.cuda.device_count()
    if isinstance(device, str) and device == "auto":
        device = "cuda" if cuda_available else "cpu"
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(
            f"device must be 'auto', 'cpu', 'cuda' or 'cuda:<index>', got {device!r}"
        ) from error
    if resolved.type == "cuda":
        if not cuda_available:
            raise ValueError(
                f"device={str(device)!r} was requested but CUDA is not available;"
                " use device='auto' or device='cpu'"
            )
        if cuda_device_count is not None and (resolved.index or 0) >= cuda_device_count:
            raise ValueError(
                f"device={str(device)!r} was requested but this machine has"
                f" {cuda_device_count} CUDA device(s), cuda:0 to cuda:{cuda_device_count - 1};"
                " use device='cuda' or an index in that range"
            )
        bf16 = _cuda_supports_bf16(resolved)
        return DeviceConfig(
            device=resolved,
            amp_dtype=torch.bfloat16 if bf16 else None,
            pin_memory=True,
            non_blocking=True,
            eval_batch_size=8192,
        )
    if resolved.type != "cpu":
        raise ValueError(f"device must be 'auto', 'cpu' or a CUDA device, got {device!r}")
    return DeviceConfig(
        device=resolved, amp_dtype=None, pin_memory=False, non_blocking=False, eval_batch_size=4096
    )


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (CUDA runs asynchronously; a no-op on the CPU),
    so that a wall-clock timing covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _cuda_supports_bf16(device: torch.device) -> bool:
    try:
        return bool(torch.cuda.is_bf16_supported())
    except (RuntimeError, AssertionError):  # pragma: no cover - driver dependent
        return False


@contextlib.contextmanager
def hardware_settings(config: DeviceConfig) -> Iterator[None]:
    """Apply the backend settings for the duration of a fit, then restore them.

    On the CPU, torch never uses more intra-op threads than the CPUs this process may run
    on (a container or ``taskset`` can allow fewer than the machine has); on CUDA, cuDNN
    autotuning and TF32 matrix products are switched on.
    """
    if not config.is_cuda:
        threads = torch.get_num_threads()
        allowed = available_cpus()
        if threads > allowed:
            torch.set_num_threads(allowed)
        try:
            yield
        finally:
            if threads > allowed:
                torch.set_num_threads(threads)
        return
    saved = (
        torch.backends.cudnn.benchmark,
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
    )
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        (
            torch.backends.cudnn.benchmark,
            torch.backends.cuda.matmul.allow_tf32,
            torch.backends.cudnn.allow_tf32,
        ) = saved


FIT_LOCK = threading.RLock()
"""Held by a fit while it sets torch's process-wide state (the random generators it seeds
and draws from, the thread count, the backend flags): fits started from several threads
of one process run one after the other, each reproducible and each restoring what it
found. Processes (joblib's default backend) are not affected."""


@contextlib.contextmanager
def seeded(seed: int, config: DeviceConfig) -> Iterator[None]:
    """Seed torch for a fit without disturbing the caller's global random state.

    Only the generators that are restored afterwards are seeded: the CPU's and, on CUDA,
    the fit device's (``torch.manual_seed`` would also reseed every other GPU, and MPS,
    for good)."""
    index = config.device.index
    if config.is_cuda and index is None:
        index = torch.cuda.current_device()  # where "cuda" runs
    with torch.random.fork_rng(devices=[index] if config.is_cuda else []):
        torch.default_generator.manual_seed(seed)
        if config.is_cuda:
            with torch.cuda.device(index):
                torch.cuda.manual_seed(seed)
        yield


def available_cpus() -> int:
    """CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def cpu_threads() -> int:
    """The number of intra-op threads torch uses on the CPU (for the record)."""
    return torch.get_num_threads()
