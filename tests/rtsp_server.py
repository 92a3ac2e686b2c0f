"""A loopback RTSP server for the tests: GStreamer's RTSP server (Debian's
gir1.2-gst-rtsp-server-1.0 + python3-gi), run by Debian's /usr/bin/python3
(not the venv, which has no GObject bindings).

    /usr/bin/python3 tests/rtsp_server.py PORT [CLIP.avi]

serves /live: a live moving ball (videotestsrc), 640x480 at 10 fps, as RTP
JPEG; and, with CLIP, /clip: the MJPG AVI once from its start for each
client, at its own rate. Prints "ready" when it listens.
"""

from __future__ import annotations

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def main() -> None:
    Gst.init(None)
    port = sys.argv[1]
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    mounts = server.get_mount_points()
    live = GstRtspServer.RTSPMediaFactory()
    live.set_launch(
        "( videotestsrc is-live=true pattern=ball ! "
        "video/x-raw,format=I420,width=640,height=480,framerate=10/1 ! "
        "jpegenc quality=85 ! rtpjpegpay name=pay0 pt=26 )"
    )
    live.set_shared(True)
    mounts.add_factory("/live", live)
    if len(sys.argv) > 2:
        clip = GstRtspServer.RTSPMediaFactory()
        clip.set_launch(
            f'( filesrc location="{sys.argv[2]}" ! avidemux ! identity sync=true ! jpegdec ! videoconvert ! '
            "video/x-raw,format=I420 ! jpegenc quality=90 ! rtpjpegpay name=pay0 pt=26 )"
        )
        clip.set_shared(False)  # each client from the start
        mounts.add_factory("/clip", clip)
    server.attach(None)
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
