"""wsgate_worker: write wsgate workers in Python.

    from wsgate_worker import Worker, Service, ServiceError

    class Counter(Service):
        def start(self, ctx):
            self.n = 0
        def handle(self, ctx, msg):
            self.n += msg.data if isinstance(msg.data, int) else 1
            return self.n

    Worker(["tcp://127.0.0.1:7001"], "py-1", {"pycounter": Counter}).run()

See workers/python/README.md and docs/backend-protocol.md."""

from .protocol import F_GW, F_RAW, F_TEXT, SVC_RETRY_SAFE
from .service import Context, Message, Service, ServiceError
from .worker import Worker, load_key

__all__ = ["Worker", "Service", "ServiceError", "Context", "Message", "load_key",
           "F_RAW", "F_TEXT", "F_GW", "SVC_RETRY_SAFE"]
