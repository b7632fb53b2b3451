"""Chromium switches that send every byte of a browser through its egress proxy."""

from __future__ import annotations


def chromium_proxy_args(port: int) -> list[str]:
    """Switches for a browser whose egress proxy listens on 127.0.0.1:port.

    `<-loopback>` removes Chromium's implicit loopback bypass, so even pages on 127.0.0.1 pass
    the proxy (and its guard). QUIC would go around an HTTP proxy over UDP, and so would WebRTC
    unless it is limited to proxied UDP, which an HTTP proxy never carries.
    """
    return [
        f"--proxy-server=http://127.0.0.1:{port}",
        "--proxy-bypass-list=<-loopback>",
        "--disable-quic",
        "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
    ]
