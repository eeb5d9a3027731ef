"""A tiny RTSP server for the camera integration test: JPEG frames from disk, streamed as H.264, looped forever.

It stands in for an IP camera: GStreamer's own RTSP server (GstRtspServer) serves one mount point, with one
shared pipeline for every client, encoding with x264 tuned for latency and a key frame every few frames, so
a client that reconnects after an outage gets a picture within a second. The test SIGKILLs it and starts it
again on the same port to play a camera that loses power.

It runs under Debian's /usr/bin/python3, not the project's venv: GStreamer's Python bindings (`gi`, from
python3-gi, gir1.2-gst-rtsp-server-1.0, python3-gst-1.0) are system packages and are not installed in the
venv. It prints READY on stdout once it listens.

    /usr/bin/python3 tests/rtsp_server.py --port 8554 --path /cam \
        --frames '/work/shared/data/cdnet-highway/input/in%06d.jpg' --fps 5
"""

from __future__ import annotations

import argparse
import atexit
import glob
import os
import re
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

FRAME_SUFFIXES = (".jpg", ".jpeg")


def frame_source(spec: str) -> tuple[str, int, int]:
    """multifilesrc's (location pattern, first index, last index) for `spec`: a printf pattern with a gap-free
    counter (in%06d.jpg) is used as it is; a folder or a glob of JPEGs becomes numbered symlinks to them in a
    fresh temporary folder (removed on a clean exit)."""
    if "%" in spec:
        numbers = sorted(int(m[1]) for p in glob.glob(re.sub(r"%0?\d*d", "*", spec))
                         if (m := re.search(r"(\d+)\D*$", Path(p).name)))
        if numbers and numbers == list(range(numbers[0], numbers[0] + len(numbers))):
            return spec, numbers[0], numbers[-1]
        raise SystemExit(f"{spec}: no frames, or gaps in their numbers")
    path = Path(spec)
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES) if path.is_dir() else sorted(
        Path(p) for p in glob.glob(spec) if p.lower().endswith(FRAME_SUFFIXES))
    if not files:
        raise SystemExit(f"{spec}: no JPEG frames")
    folder = Path(tempfile.mkdtemp(prefix="vw-rtsp-frames-"))
    atexit.register(shutil.rmtree, folder, True)
    for i, file in enumerate(files):
        (folder / f"{i:06d}.jpg").symlink_to(file.resolve())
    return str(folder / "%06d.jpg"), 0, len(files) - 1


def pipeline(location: str, first: int, last: int, fps: int, key_every: int) -> str:
    return (f'( multifilesrc location="{location}" start-index={first} stop-index={last} loop=true '
            f'caps="image/jpeg,framerate={fps}/1" ! jpegdec ! videoconvert ! video/x-raw,format=I420 ! '
            f"x264enc tune=zerolatency speed-preset=ultrafast key-int-max={key_every} bitrate=800 ! "
            "rtph264pay name=pay0 pt=96 config-interval=1 )")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/cam", help="mount point, e.g. /cam")
    parser.add_argument("--frames", required=True, help="folder, glob or printf pattern of JPEG frames")
    parser.add_argument("--fps", type=int, default=5)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)

    location, first, last = frame_source(args.frames)
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(pipeline(location, first, last, args.fps, key_every=max(1, args.fps)))
    factory.set_shared(True)  # one encoder for every client, as a camera has
    server.get_mount_points().add_factory(args.path if args.path.startswith("/") else "/" + args.path, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on {args.host}:{args.port}", file=sys.stderr)
        return 1

    loop = GLib.MainLoop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    print(f"READY rtsp://{args.host}:{args.port}{args.path} ({last - first + 1} frames at {args.fps} fps)", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("GST_DEBUG", "1")
    sys.exit(main())
