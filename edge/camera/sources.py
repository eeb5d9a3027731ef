"""Where frames come from: a USB camera (V4L2), an IP camera (RTSP), a video file, or a folder of frames.

All four look the same to the watcher: `open()`, then `read()` until it returns None (end of a recording,
or a live stream that stopped), then `close()`. Live sources are reopened by the watcher with backoff;
recordings are played at their own frame rate.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol
from urllib.parse import quote, unquote, urlsplit

import cv2
import numpy as np

from edge.config import CameraSettings

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
NETWORK_SCHEMES = ("rtsp", "rtsps", "http", "https")
RTSP_TIMEOUT_MS = 5000
# One decoding thread: a 640×480 H.264 stream needs a few ms a frame, and every extra FFmpeg thread holds its
# own frame buffers (measured: ~20 MB more RSS on 2 cores, more on a Pi 4's 4).
DECODE_THREADS = 1
# Over 4G, UDP RTP loses packets and smears frames; TCP interleaving costs a little latency and keeps them whole.
# FFmpeg probes a new stream for 5 s by default, so every reconnect took the whole open timeout at 5 fps
# (measured: 5.0 s → 1.2 s with 1 s of probing). IP cameras announce the H.264 parameters in the RTSP
# session description, so one second of probing is enough.
os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp|analyzeduration;1000000")


class SourceError(RuntimeError):
    """The source cannot be opened (message is safe to log: it never contains a password)."""


class FrameSource(Protocol):
    live: bool  # frames arrive in real time (camera, stream) rather than from a recording
    fps: float  # native frames per second (a guess for live sources that do not say)

    def open(self) -> None: ...
    def read(self) -> np.ndarray | None: ...
    def close(self) -> None: ...


class CaptureSource:
    """Anything OpenCV's capture opens: /dev/videoN through V4L2, rtsp:// and video files through FFmpeg."""

    def __init__(self, target: str, live: bool, shown_as: str, password: str | None = None) -> None:
        self.live = live
        self.fps = 10.0
        self._target = target
        self._shown_as = shown_as
        self._password = password
        self._capture: cv2.VideoCapture | None = None

    def open(self) -> None:
        self.close()
        if self._target.startswith("/dev/video") or self._target.isdigit():
            index = int(self._target) if self._target.isdigit() else self._target
            capture = cv2.VideoCapture(index, cv2.CAP_V4L2)
        else:
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, RTSP_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, RTSP_TIMEOUT_MS,
                      cv2.CAP_PROP_N_THREADS, DECODE_THREADS]
            capture = cv2.VideoCapture(_with_password(self._target, self._password), cv2.CAP_FFMPEG, params)
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"cannot open {self._shown_as}")
        native = capture.get(cv2.CAP_PROP_FPS)
        self.fps = native if 0 < native <= 120 else 10.0
        self._capture = capture

    def read(self) -> np.ndarray | None:
        if self._capture is None:
            return None
        ok, frame = self._capture.read()
        return frame if ok else None

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class FolderSource:
    """A folder of frames in name order (a recording exported frame by frame, or a CDnet `input/` folder)."""

    live = False

    def __init__(self, folder: Path, fps: float = 10.0) -> None:
        self.fps = fps
        self._folder = folder
        self._files: list[Path] = []
        self._next = 0

    def open(self) -> None:
        try:
            self._files = sorted(p for p in self._folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
        except OSError as exc:
            raise SourceError(f"cannot read the folder {self._folder} ({exc.strerror})") from None
        if not self._files:
            raise SourceError(f"{self._folder} holds no .jpg/.png/.bmp frames")
        self._next = 0

    def read(self) -> np.ndarray | None:
        while self._next < len(self._files):
            path = self._files[self._next]
            self._next += 1
            if not path.is_file():
                return None  # the folder went away (an unplugged drive): as a stream that stopped
            frame = cv2.imread(str(path))
            if frame is not None:  # an unreadable file is skipped, as a camera drops a frame
                return frame
        return None

    def close(self) -> None:
        self._files = []


def open_source(settings: CameraSettings, fps_hint: float | None = None) -> FrameSource:
    """The source a camera's settings name (not yet opened). Raises SourceError for a source that cannot exist."""
    source = settings.source
    password = None
    if settings.source_password_file is not None:
        try:
            password = settings.source_password_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            problem = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise SourceError(f"cameras[{settings.id}].source_password_file: cannot read "
                              f"{settings.source_password_file} ({problem})") from None
    if "://" in source:
        if urlsplit(source).scheme.lower() in NETWORK_SCHEMES:
            return CaptureSource(source, True, settings.redacted_source, password)
        raise SourceError(f"cameras[{settings.id}].source: {settings.redacted_source} is not a camera URL this agent "
                          f"reads (use {', '.join(s + '://' for s in NETWORK_SCHEMES)})")
    if source.startswith("/dev/video") or source.isdigit():
        return CaptureSource(source, True, source)
    path = Path(source)
    if path.is_dir():
        return FolderSource(path, fps_hint or 10.0)
    if path.is_file():
        return CaptureSource(source, False, source)
    raise SourceError(f"cameras[{settings.id}].source: {settings.redacted_source} is not a camera device, an "
                      "rtsp:// URL, a video file or a folder of frames")


def _with_password(url: str, password: str | None) -> str:
    if password is None:
        return url
    parts = urlsplit(url)
    user = unquote(parts.username) if parts.username else "admin"
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host  # IPv6
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()
