"""moto's server app on a loopback port, in a thread of this process (what `Emulator` runs).

moto's own ThreadedMotoServer serves `DomainDispatcherApplication`, which finds the backend for a
request's host anew on every request: it lists moto's package folder (a stat per service) and tries
about 180 URL patterns. On the small requests cutover makes, that was about a third of the emulator's
CPU per request. The answer depends on the host alone, so this server looks each host up once.

Importing this module imports moto: `Emulator.start` imports it, nothing at plan load does.
"""

from __future__ import annotations

import threading
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server


class RememberingDispatcher(DomainDispatcherApplication):
    """moto's dispatcher, remembering each host's backend (moto calls this holding `self.lock`)."""

    def __init__(self) -> None:
        super().__init__(create_backend_app)
        self.backends: dict[str | None, Any] = {}

    def get_backend_for_host(self, host: str | None) -> Any:
        if host not in self.backends:
            self.backends[host] = super().get_backend_for_host(host)
        return self.backends[host]


class MotoServer:
    """Binds `host:port` (port 0: a free one) when made; serves from `start()` until `stop()`."""

    def __init__(self, host: str, port: int = 0) -> None:
        self.app = RememberingDispatcher()
        self._httpd = make_server(host, port, self.app, threaded=True, request_handler=MotoRequestHandler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="cutover-emulator", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._httpd.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._thread.join()
        self._httpd.server_close()
