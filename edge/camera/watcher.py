"""One thread per camera: read frames, analyse them at the configured rate, turn signals into events.

The thread owns the source. A live source that fails is closed and reopened with backoff (1 s doubling to
30 s); after `offline_after_s` without a frame the camera is reported `offline` once, and `online` again with
the next frame. Offline is judged by a second, tiny thread from the time of the last frame, because a
stream that goes silent without closing (a camera losing power behind a switch) can hold OpenCV's read for
three times its timeout. The last reported state is kept on disk, so a camera that went dark before a power cut is
reported back online after it, and the server's 视频丢失 alert resolves.

Snapshots are asked for from other threads (a door opened) and served here, where the frames are: the
"before" picture from the ring of recent frames at once, the "after" picture when its time comes.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.camera.analyser import CameraAnalyser, CameraSignal
from edge.camera.snapshots import FrameRing, encode_jpeg, scaled
from edge.camera.sources import FrameSource, SourceError, open_source
from edge.camera.tamper import TAMPER_STATES
from edge.clock import Clock
from edge.config import CameraSettings
from edge.doormemory import DoorMemory

log = logging.getLogger("venuewatch.edge.camera")

MAX_BACKOFF_S = 30.0
KEEP_REFERENCE_EVERY_S = 300.0
STALE_REQUEST_S = 5.0  # a snapshot request not served within before_s + after_s + this is dropped
MAX_PENDING_AFTER = 64
FPS_WINDOW_S = 10.0  # `fps()` counts the frames analysed in this window
# The analysis is a few small images a frame: OpenCV's thread pool would only add wake-ups and per-thread
# memory on a Pi that also decodes video.
cv2.setNumThreads(1)
Emit = Callable[[str, str, str, dict[str, Any]], str]  # (kind, sensor, state, data) → event id


class CameraWatcher:
    def __init__(self, settings: CameraSettings, clock: Clock, emit: Emit,
                 send_snapshot: Callable[[str, bytes], None], armed: Callable[[], bool], memory: DoorMemory,
                 source_factory: Callable[[CameraSettings], FrameSource] = open_source,
                 loop_recordings: bool = True, reference_file: Path | None = None) -> None:
        self.settings = settings
        self.analyser = CameraAnalyser(settings)
        # What the camera normally sees, kept across restarts: otherwise cutting the power, turning the camera
        # and restoring the power would teach the Pi the new view as normal.
        self._reference_file = reference_file
        self.analyser.kept_reference = read_reference(reference_file) if reference_file else None
        # A tamper state reported before a restart is still open on the server: resume it, so that it clears
        # (and the alert resolves) once the view is back, and is not reported a second time if it is not.
        self.analyser.resumed_tamper = [s for s in [memory.last(self._tamper_key)] if s in TAMPER_STATES]
        self._reference_saved_at = -KEEP_REFERENCE_EVERY_S  # kept as soon as the first reference is learned
        self._relearn = threading.Event()
        self._clock = clock
        self._emit = emit
        self._send_snapshot = send_snapshot
        self._armed = armed
        self._memory = memory
        self._source_factory = source_factory
        self._loop = loop_recordings
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._supervisor: threading.Thread | None = None
        self._state_lock = threading.Lock()
        self._last_frame_at = 0.0
        self._requests: queue.SimpleQueue[tuple[float, str]] = queue.SimpleQueue()
        self._level_lock = threading.Lock()
        self._level = 0.0
        self._frame_errors = 0
        self.snapshots_dropped = 0
        self._pending_after: list[tuple[float, str]] = []
        self.ring = FrameRing(settings.snapshot.before_s + 0.5, every_s=0.5)
        self.online: bool | None = None  # None until the first frame or the first offline verdict
        self.frames_read = 0
        self.frames_analysed = 0
        self._analysed_at: deque[float] = deque(maxlen=int(settings.fps * FPS_WINDOW_S * 1.5) + 10)
        self._started_at = clock.mono()
        self.analyse_seconds = 0.0
        self.snapshots_sent = 0

    @property
    def id(self) -> str:
        return self.settings.id

    @property
    def _tamper_key(self) -> str:
        return f"{self.settings.id}/tamper"

    def start(self) -> None:
        self._last_frame_at = self._started_at = self._clock.mono()
        self._thread = threading.Thread(target=self._run, name=f"camera-{self.id}", daemon=True)
        self._thread.start()
        self._supervisor = threading.Thread(target=self._supervise, name=f"camera-{self.id}-offline", daemon=True)
        self._supervisor.start()

    def signal_stop(self) -> None:
        """Tell the threads to end (returns at once; `stop` waits): stop every camera first, then wait."""
        self._stop.set()

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        for thread in (self._thread, self._supervisor):
            if thread:
                thread.join(timeout)

    def request_snapshot(self, event_id: str) -> None:
        """Ask for before/after pictures for an event (any thread; never blocks). A request the camera cannot
        serve in time (offline, stalled) is dropped: a picture from hours later is not one of the event."""
        self._requests.put((self._clock.mono(), event_id))

    def relearn(self) -> None:
        """Forget the learned view (the camera was re-aimed on purpose); takes effect on the next frame."""
        self._relearn.set()

    def metrics(self) -> dict[str, float]:
        analysed = max(1, self.frames_analysed)
        with self._level_lock:
            level, self._level = self._level, 0.0
        return {f"motion.{self.id}": round(level, 4),
                f"camera_online.{self.id}": 1.0 if self.online else 0.0,
                f"camera_frames.{self.id}": float(self.frames_analysed),
                f"camera_ms.{self.id}": round(1000 * self.analyse_seconds / analysed, 3)}

    def fps(self) -> float:
        """Frames analysed per second over the last FPS_WINDOW_S seconds (since the start, if shorter)."""
        now = self._clock.mono()
        recent = sum(1 for t in tuple(self._analysed_at) if now - t <= FPS_WINDOW_S)
        span = min(FPS_WINDOW_S, now - self._started_at)
        return round(recent / span, 2) if span > 0 else 0.0

    # --- the thread ------------------------------------------------------------------------------------------

    def _run(self) -> None:
        source: FrameSource | None = None
        backoff = 1.0
        next_due = 0.0
        frames_since_open = 0
        try:
            while not self._stop.is_set():
                if source is None:
                    source = self._open(backoff)
                    if source is None:
                        backoff = min(MAX_BACKOFF_S, backoff * 2)
                        continue
                    frames_since_open = 0
                frame = source.read()
                now = self._clock.mono()
                if frame is None:
                    source.close()
                    if not source.live and not self._loop:
                        return
                    if source.live or frames_since_open == 0:
                        # A stream that dropped, or a recording without a readable frame: wait, longer each time
                        # it happens again without a frame in between.
                        log.warning("event=camera_stream_lost camera=%s frames=%d retry_s=%.0f", self.id,
                                    frames_since_open, backoff)
                        self._stop.wait(backoff)
                        backoff = min(MAX_BACKOFF_S, backoff * 2)
                    source = None  # reopened above: a live source with backoff, a recording from its start
                    continue
                frames_since_open += 1
                backoff = 1.0  # frames flow: the next failure starts the backoff afresh
                self._last_frame_at = now
                self.frames_read += 1
                if self.online is not True:
                    self._set_online(True)
                try:
                    if now >= next_due:
                        next_due = max(next_due + 1 / self.settings.fps, now)
                        self._analyse(frame, now)
                    self._serve_snapshots(frame, now)
                except Exception:  # one bad frame (odd format, a full disk) must not end the camera
                    self._frame_errors += 1
                    if self._frame_errors in (1, 10, 100) or self._frame_errors % 1000 == 0:
                        log.exception("event=camera_frame_error camera=%s errors=%d", self.id, self._frame_errors)
                if not source.live:
                    self._stop.wait(1 / source.fps)  # a recording plays at its own pace
        finally:
            if source is not None:
                source.close()
            self._keep_reference()

    def _open(self, backoff: float) -> FrameSource | None:
        try:
            source = self._source_factory(self.settings)
            source.open()
        except SourceError as exc:
            log.warning("event=camera_open_failed camera=%s error=%s retry_s=%.0f", self.id, exc, backoff)
            self._stop.wait(backoff)
            return None
        log.info("event=camera_opened camera=%s source=%s", self.id, self.settings.redacted_source)
        return source

    def _analyse(self, frame: np.ndarray, now: float) -> None:
        if self._relearn.is_set():
            self._relearn.clear()
            self.analyser.relearn()
            if self._reference_file is not None:
                try:
                    self._reference_file.unlink(missing_ok=True)
                except OSError as exc:
                    log.warning("event=camera_reference_not_removed camera=%s error=%s", self.id, exc.strerror)
            log.warning("event=camera_relearn camera=%s", self.id)
        started = time.perf_counter()
        # Before NTP has set the clock (a Pi without a real-time clock, after a power cut) the local time may be
        # hours off: motion is then reported at all hours rather than missed.
        local_time = self._clock.now().time() if self._clock.synced() else None
        signals = self.analyser.analyse(frame, now, local_time)
        self.analyse_seconds += time.perf_counter() - started
        self.frames_analysed += 1
        self._analysed_at.append(now)
        with self._level_lock:
            self._level = max(self._level, self.analyser.take_level())
        # The ring keeps frames at the snapshot width: a 1080p stream would otherwise hold 6 MB a frame.
        self.ring.add(now, scaled(frame, self.settings.snapshot.width))
        for signal in signals:
            self._signal(signal)
        if now - self._reference_saved_at >= KEEP_REFERENCE_EVERY_S and self._keep_reference():
            self._reference_saved_at = now

    def _signal(self, signal: CameraSignal) -> None:
        try:
            event_id = self._emit(signal.kind, self.id, signal.state, signal.data)
        except Exception:  # the camera thread must outlive a failing journal
            log.exception("event=camera_emit_failed camera=%s kind=%s state=%s", self.id, signal.kind, signal.state)
            return
        log.info("event=%s camera=%s state=%s data=%s", signal.kind, self.id, signal.state, signal.data)
        if signal.kind == "tamper":
            self._memory.remember(self._tamper_key, signal.state)
        wants_picture = (signal.kind == "tamper" and signal.state != "clear") or (
            signal.kind == "motion" and signal.state == "start" and self._armed())
        if wants_picture:
            self.request_snapshot(event_id)

    def _serve_snapshots(self, frame: np.ndarray, now: float) -> None:
        snapshot = self.settings.snapshot
        while True:
            try:
                asked_at, event_id = self._requests.get_nowait()
            except queue.Empty:
                break
            if now - asked_at > snapshot.before_s + snapshot.after_s + STALE_REQUEST_S:
                self.snapshots_dropped += 1
                log.warning("event=snapshot_dropped camera=%s event_id=%s late_s=%.0f", self.id, event_id,
                            now - asked_at)
                continue
            before = self.ring.before(asked_at, snapshot.before_s)
            self._send(event_id, before if before is not None else frame)
            if len(self._pending_after) < MAX_PENDING_AFTER:
                self._pending_after.append((asked_at + snapshot.after_s, event_id))
        due = [item for item in self._pending_after if item[0] <= now]
        for item in due:
            self._pending_after.remove(item)
            self._send(item[1], frame)

    def _send(self, event_id: str, frame: np.ndarray) -> None:
        snapshot = self.settings.snapshot
        try:
            jpeg = encode_jpeg(frame, snapshot.max_kb * 1024, snapshot.width)
            self._send_snapshot(event_id, jpeg)
            self.snapshots_sent += 1
        except Exception:  # a picture is a nice-to-have next to the event, which is already journaled
            log.exception("event=snapshot_failed camera=%s event_id=%s", self.id, event_id)

    def _keep_reference(self) -> bool:
        if self._reference_file is None or (reference := self.analyser.reference()) is None:
            return False
        return write_reference(self._reference_file, reference)

    def _supervise(self) -> None:
        period = min(0.5, self.settings.offline_after_s / 4)
        while not self._stop.wait(period):
            if self.online is not False and self._clock.mono() - self._last_frame_at >= self.settings.offline_after_s:
                self._set_online(False)

    def _set_online(self, online: bool) -> None:
        with self._state_lock:  # the reading thread says online, the supervisor offline
            if not online and self._clock.mono() - self._last_frame_at < self.settings.offline_after_s:
                return  # a frame arrived since the supervisor looked
            self._change_online(online)
            if not online:
                self.ring.clear()  # pictures from before the outage are not "before" any later event

    def _change_online(self, online: bool) -> None:
        if self.online is online:
            return
        was = self.online
        self.online = online
        state = "online" if online else "offline"
        reported = self._memory.last(self.id)
        if reported == state or (online and was is None and reported is None):
            if reported is None:
                self._memory.remember(self.id, state)
            return  # nothing new to tell: first frame after a start, or the same state as reported
        try:
            self._emit("camera", self.id, state, {})
        except Exception:
            log.exception("event=camera_emit_failed camera=%s state=%s", self.id, state)
            return
        self._memory.remember(self.id, state)
        log.warning("event=camera_%s camera=%s", state, self.id)


def read_reference(path: Path) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except FileNotFoundError:
        return None
    except Exception as exc:  # a torn write on a worn SD card (empty, truncated zip…): learn afresh
        log.warning("event=camera_reference_unreadable file=%s error=%s", path, exc)
        return None


def write_reference(path: Path, reference: dict[str, np.ndarray]) -> bool:
    tmp = path.with_suffix(".tmp")
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, **reference)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:  # the reference is a convenience; the camera goes on without it
        log.warning("event=camera_reference_not_saved file=%s error=%s", path, exc.strerror)
        return False
    return True
