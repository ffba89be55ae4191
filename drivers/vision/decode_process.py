"""Symbol decoding in worker processes shared by every camera of the controller.

Decoding and grading a frame costs milliseconds of CPU, much of it holding the GIL (the
grading runs in numpy). In a thread of the controller it would delay the event loop and the
database thread, and with them every reject decision; in its own process it runs on another
core. Each worker keeps one decoder per camera config, built on first use. The pool is the
runtime's: it builds one, hands it to the camera drivers and closes it when it stops.
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

_decoders: dict[str, Decoder] = {}  # in a worker process: camera config → its decoder


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


def _decode_in_worker(config: CameraConfig, image: Image | None) -> list[DecodedSymbol]:
    key = config.model_dump_json()
    decoder = _decoders.get(key)
    if decoder is None:
        decoder = _decoders[key] = decoder_for(config)
    return [] if image is None else decoder.decode(image)


class DecodePool:
    """The decoding processes of one controller, started on the first frame (as many as
    the most any camera's ``decode_workers`` asks for) and started again after a crash."""

    def __init__(self) -> None:
        self._executor: ProcessPoolExecutor | None = None
        self._workers = 1
        self._lock = threading.Lock()
        self._closed = False

    def decoder(self, config: CameraConfig) -> ProcessDecoder:
        """The decoder ``config`` asks for, run in this pool; one this machine cannot build
        fails here, at start-up."""
        decoder_for(config)
        with self._lock:
            self._workers = max(self._workers, config.decode_workers)
        return ProcessDecoder(config, self)

    def executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._closed:
                raise DriverError("the decoding pool is closed")
            if self._executor is None:
                # spawn, not fork: the controller has threads (database, asyncio) by now.
                self._executor = ProcessPoolExecutor(
                    max_workers=self._workers, mp_context=multiprocessing.get_context("spawn"),
                    initializer=_follow_parent, initargs=(os.getpid(),))
            return self._executor

    def forget_broken(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._executor is broken:
                self._executor = None

    def worker_pid(self) -> int | None:
        """The process id of a decoding worker, if one runs (for diagnostics and tests)."""
        with self._lock:
            processes = getattr(self._executor, "_processes", None) or {}
            return next(iter(processes), None)

    def close(self) -> None:
        """End the workers (frames still queued are dropped); the pool takes no more."""
        with self._lock:
            executor, self._executor, self._closed = self._executor, None, True
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)


class ProcessDecoder:
    """The decoder one camera's config asks for, run in a :class:`DecodePool`."""

    def __init__(self, config: CameraConfig, pool: DecodePool) -> None:
        self.config = config
        self.pool = pool

    async def _run(self, image: Image | None) -> list[DecodedSymbol]:
        executor = self.pool.executor()
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(executor, _decode_in_worker, self.config, image)
        except BrokenProcessPool:
            self.pool.forget_broken(executor)
            raise DriverError(f"camera {self.config.id}: the decoding process died; "
                              "it is restarted on the next frame") from None

    async def warm_up(self) -> None:
        """Start the process and build the decoder before the first frame needs them."""
        await self._run(None)

    async def decode(self, image: Image) -> list[DecodedSymbol]:
        return await self._run(image)
