"""A real RTSP server for the tests: Debian's GStreamer RTSP server (gst-rtsp-server).

Run it with Debian's interpreter, which has `gi` (the project's virtualenv does not):

    /usr/bin/python3 tests/support/rtsp_server.py --port 0 --pattern ball --width 320 --height 240 --fps 25
    /usr/bin/python3 tests/support/rtsp_server.py --port 8554 --file video.mp4

It serves rtsp://127.0.0.1:<port>/test (mount set by --mount) and prints one line,
"READY <port>", on stdout once the socket listens (--port 0 picks a free port).
SIGTERM or SIGINT stops it; the listening socket is bound with SO_REUSEADDR, so it
can be started again on the same port at once.

Sources:
- --pattern (default): a live videotestsrc encoded by x264 (zerolatency, a keyframe
  every second). Each client gets its own pipeline (unless --shared), so a new
  client's first frame is a keyframe and there is no end of stream.
- --file: an H.264 MP4, sent in real time from its start to each client (its own
  pipeline), without looping: when the file ends the server sends no more data but
  keeps the session open, which is what a camera that stops sending looks like. Make
  the file as long as the test needs (a 320x240 60 s file takes about a second to make).

The tests drive this script through tests/support/rtsp.py (RtspServer).
"""

from __future__ import annotations

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def launch_line(args: argparse.Namespace) -> str:
    if args.file:
        location = args.file.replace("\\", "\\\\").replace('"', '\\"')
        return (
            f'( filesrc location="{location}" ! qtdemux ! h264parse config-interval=-1 '
            "! rtph264pay name=pay0 pt=96 )"
        )
    return (
        f"( videotestsrc is-live=true pattern={args.pattern} "
        f"! video/x-raw,width={args.width},height={args.height},framerate={args.fps}/1 "
        f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={args.fps} "
        "! h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 )"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--mount", default="/test")
    parser.add_argument("--file", help="an H.264 MP4 to serve instead of the live test pattern")
    parser.add_argument("--pattern", default="ball", help="videotestsrc pattern (ball, smpte, snow, ...)")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--shared", action="store_true", help="all clients share one pipeline")
    args = parser.parse_args(argv)

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))

    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch_line(args))
    factory.set_shared(args.shared)
    server.get_mount_points().add_factory(args.mount, factory)

    loop = GLib.MainLoop()
    if server.attach(None) == 0:
        print(f"cannot listen on {args.host}:{args.port}", file=sys.stderr, flush=True)
        return 2

    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, signum, loop.quit)

    print(f"READY {server.get_bound_port()}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
