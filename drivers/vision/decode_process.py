"""Symbol decoding in one worker process shared by every camera of the controller.

Decoding and grading a frame costs milliseconds of CPU, much of it holding the GIL (the
grading runs in numpy). In a thread of the controller it would delay the event loop and the
database thread, and with them every reject decision; in its own process it runs on another
core. Each worker keeps one decoder per camera config, built on first use.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from drivers.errors import DriverError
from drivers.interfaces import DecodedSymbol, Decoder, Image
from drivers.vision.decoders import decoder_for
from line_config.devices import Camera as CameraConfig

_executor: ProcessPoolExecutor | None = None
_workers = 1  # the most any camera's config asked for
_lock = threading.Lock()
_decoders: dict[str, Decoder] = {}  # in the worker process: camera config → its decoder


def _executor_now() -> ProcessPoolExecutor:
    global _executor
    with _lock:
        if _executor is None:
            # spawn, not fork: the controller has threads (database, asyncio) at this point.
            _executor = ProcessPoolExecutor(max_workers=_workers,
                                            mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_follow_parent, initargs=(os.getpid(),))
        return _executor


def _follow_parent(parent: int) -> None:
    """In a worker: exit once the controller that started it is gone, even if it was killed
    (a worker blocked on its queue would otherwise live on as an orphan). Ctrl-C at the
    terminal reaches the whole process group: the controller decides when its worker ends,
    so the worker ignores it (no KeyboardInterrupt traceback of its own)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="follow-controller", daemon=True).start()


def worker_pid() -> int | None:
    """The process id of a decoding worker, if one runs (for diagnostics and tests)."""
    with _lock:
        processes = getattr(_executor, "_processes", None) or {}
        return next(iter(processes), None)


def _forget_broken(broken: ProcessPoolExecutor) -> None:
    global _executor
    with _lock:
        if _executor is broken:
            _executor = None


def _decode_in_worker(config: CameraConfig, image: Image | None) -> list[DecodedSymbol]:
    key = config.model_dump_json()
    decoder = _decoders.get(key)
    if decoder is None:
        decoder = _decoders[key] = decoder_for(config)
    return [] if image is None else decoder.decode(image)


class ProcessDecoder:
    """The decoder ``config`` asks for, run in the shared decoding process."""

    def __init__(self, config: CameraConfig) -> None:
        global _workers
        decoder_for(config)  # a decoder this machine cannot build fails here, at start-up
        self.config = config
        with _lock:
            _workers = max(_workers, config.decode_workers)

    async def _run(self, image: Image | None) -> list[DecodedSymbol]:
        executor = _executor_now()
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(executor, _decode_in_worker, self.config, image)
        except BrokenProcessPool:
            _forget_broken(executor)
            raise DriverError(f"camera {self.config.id}: the decoding process died; "
                              "it is restarted on the next frame") from None

    async def warm_up(self) -> None:
        """Start the process and build the decoder before the first frame needs them."""
        await self._run(None)

    async def decode(self, image: Image) -> list[DecodedSymbol]:
        return await self._run(image)
