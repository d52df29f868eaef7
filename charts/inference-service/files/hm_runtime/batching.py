"""Adaptive batching: requests that arrive while the model is busy are coalesced into one vectorised
call (up to max_rows rows, waiting at most max_wait for company), then split back per request.

On a single core a server is either parsing requests or predicting; every row that arrived during
the last predict joins the next one, so batches grow with load and latency does not. Before each batch
the batcher lets the event loop take one more turn (with max_wait 0): the requests whose bytes came in
during that turn join it, for the cost of one loop pass, microseconds. With 32 clients a model call then
carries about 30 rows instead of about 15, and the model's fixed cost per call (scikit-learn's input
checks alone are about 0.1 ms) is shared by twice as many requests."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

import numpy as np

# A predict slower than this runs in a worker thread so health checks and parsing go on meanwhile.
INLINE_LIMIT_S = 0.005


class WrongLength(Exception):
    """The model answered a different number of rows than it was given: a batch cannot be split back."""


class Batcher:
    def __init__(
        self,
        predict: Callable[[np.ndarray], np.ndarray],
        *,
        max_rows: int = 64,
        max_wait: float = 0.0,
        observe: Callable[[int], None] | None = None,
        full: Callable[[], None] | None = None,
        after: Callable[[np.ndarray, np.ndarray], None] | None = None,
    ) -> None:
        self.predict, self.max_rows, self.max_wait = predict, max_rows, max_wait
        self.observe = observe or (lambda _n: None)
        self.full = full or (lambda: None)  # a model call at the row cap (hm_batch_full_total)
        self.after = after  # (rows, predictions) of each answered batch, once its requests have them
        self.pending: deque[tuple[np.ndarray, asyncio.Future[np.ndarray]]] = deque()
        self.wake = asyncio.Event()
        self.slow = False  # learnt: the last predicts took longer than INLINE_LIMIT_S
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    def submit(self, rows: np.ndarray) -> asyncio.Future[np.ndarray]:
        """The predictions for `rows`, once their batch has been through the model (await it)."""
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self.pending.append((rows, future))
        self.wake.set()
        return future

    def _take(self) -> list[tuple[np.ndarray, asyncio.Future[np.ndarray]]]:
        taken, count = [], 0
        width = self.pending[0][0].shape[1:]
        while self.pending and count < self.max_rows and self.pending[0][0].shape[1:] == width:
            rows, future = self.pending.popleft()
            if future.cancelled():  # the client went away
                continue
            taken.append((rows, future))
            count += len(rows)
        return taken

    async def _call(self, rows: np.ndarray) -> np.ndarray:
        """The model on `rows`, which must answer one output row per input row."""
        out = await asyncio.to_thread(self.predict, rows) if self.slow else self.predict(rows)
        if out.ndim == 0 or len(out) != len(rows):
            raise WrongLength(
                f"the model returned {'a scalar' if out.ndim == 0 else f'{len(out)} rows'} "
                f"for {len(rows)} input rows"
            )
        return out

    async def _one_by_one(
        self, taken: list[tuple[np.ndarray, asyncio.Future[np.ndarray]]], exc: Exception
    ) -> None:
        """A batch whose call failed: each request is predicted alone, so only the request that causes
        the failure gets it; the others get their own answers."""
        if len(taken) == 1:
            if not taken[0][1].done():
                taken[0][1].set_exception(exc)
            return
        for rows, future in taken:
            if future.done():
                continue
            try:
                result = await self._call(rows)
            except Exception as own:
                future.set_exception(own)
            else:
                future.set_result(result)

    async def _serve(self, taken: list[tuple[np.ndarray, asyncio.Future[np.ndarray]]]) -> None:
        batch = taken[0][0] if len(taken) == 1 else np.concatenate([r for r, _ in taken])
        self.observe(len(batch))
        if len(batch) >= self.max_rows:
            self.full()
        failed: Exception | None = None
        try:
            started = time.perf_counter()
            out = await self._call(batch)
            self.slow = time.perf_counter() - started > INLINE_LIMIT_S
        except Exception as exc:
            failed = exc
        if failed is not None:  # outside the handler: each request's own error stands alone
            await self._one_by_one(taken, failed)
            return
        start = 0
        for rows, future in taken:
            if not future.done():
                future.set_result(out[start : start + len(rows)])
            start += len(rows)
        if self.after is not None:  # the monitor: one hand-over per model call, not per request
            self.after(batch, out)

    async def _run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.pending:
                if self.max_wait and sum(len(r) for r, _ in self.pending) < self.max_rows:
                    await asyncio.sleep(self.max_wait)
                else:
                    # One loop turn before each batch: the requests read meanwhile join it, and health
                    # checks go on between model calls however long the queue.
                    await asyncio.sleep(0)
                taken = self._take()
                if not taken:
                    continue
                try:
                    await self._serve(taken)
                except Exception as exc:  # the loop never dies: whatever went wrong goes to these requests
                    for _rows, future in taken:
                        if not future.done():
                            future.set_exception(exc)
