"""The options of the gateway's own client sockets, read from the gateway
process itself: pidfd_getfd(2) gives the test a duplicate of the socket
the gateway accepted, and getsockopt tells what the gateway set on it.

Nagle must be off on every accepted socket (lws 4.1 leaves it on for the
sockets we hand it, and a reply would then wait for the ACK of the one
before). The gateway sets it once on the listener, which Linux copies to
each accepted socket; this proves the copy really happens, on the public
listener with one gateway and with several sharing the port."""

import ctypes
import os
import socket

import harness
from harness import GatewayTestCase

SYS_pidfd_getfd = 438  # x86-64 and the generic table alike


def _peer_socket_in(pid, local_port, peer_port):
    """A duplicate of the socket of process pid connected from peer_port
    to local_port, found through /proc/net/tcp and /proc/PID/fd."""
    inode = None
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            lport = int(parts[1].split(":")[1], 16)
            rport = int(parts[2].split(":")[1], 16)
            if lport == local_port and rport == peer_port and parts[3] == "01":
                inode = parts[9]
    if inode is None:
        raise AssertionError("no established socket %d <- %d" % (local_port, peer_port))
    target = "socket:[%s]" % inode
    fdnum = None
    for name in os.listdir("/proc/%d/fd" % pid):
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, name)) == target:
                fdnum = int(name)
        except OSError:
            continue
    if fdnum is None:
        raise AssertionError("process %d holds no %s" % (pid, target))
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    try:
        dup = libc.syscall(SYS_pidfd_getfd, pidfd, fdnum, 0)
        if dup < 0:
            raise OSError(ctypes.get_errno(), "pidfd_getfd")
    finally:
        os.close(pidfd)
    return socket.socket(fileno=dup)


class AcceptedSocketTest(GatewayTestCase):
    GATEWAY_ARGS = []

    async def asyncSetUp(self):
        await super().asyncSetUp()
        self.start(gateway_args=self.GATEWAY_ARGS, workers=1)

    async def test_nagle_is_off_on_accepted_sockets(self):
        clients = [await self.connect("json") for _ in range(3)]
        plain = await self.connect_raw_endpoint("/ws")  # no subprotocol
        for c in clients:  # upgraded and served: the socket is the gateway's
            self.assertEqual((await c.call("echo", 1))["data"], 1)
        for ws in [c.ws for c in clients] + [plain]:
            peer_port = ws.transport.get_extra_info("sockname")[1]
            s = _peer_socket_in(self.cluster.gateway.pid, self.cluster.port, peer_port)
            try:
                self.assertEqual(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY), 1,
                                 "Nagle is on for a client socket")
            finally:
                s.close()


class AcceptedSocketReuseportTest(AcceptedSocketTest):
    GATEWAY_ARGS = ["--reuseport"]


if __name__ == "__main__":
    harness.main()
