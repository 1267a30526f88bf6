"""The device HTTP API (connector-spec §3.3, §6, §6.7): an aiohttp application on the broker's
event loop, served on the plain device HTTP listener (``listeners.http``).

Modules by concern: ``app`` (routes, connector selection, errors), ``context`` (keys and reply
shapes), ``forms`` (form-encoded bodies), ``auth`` (``X-Exosite-CIK`` and Basic), ``stack``
(write, read, hybrid, record, timestamp), ``longpoll`` (§6.5), ``provision`` (activate),
``content`` (list, info, download, upload).
"""

from admin.device_http.app import create_device_app

__all__ = ["create_device_app"]
