# cython: language_level=3
"""The socket calls of the fast probes, made with the GIL held (the compiled twin of
`maglev.health._sockops_py`; `maglev.health.sockops` selects one).

Each call is a non-blocking syscall on a raw descriptor that returns within microseconds. The
`socket` module releases the GIL around every one of them (socket, connect, epoll_ctl, send,
recv, close): four to seven releases per probe. While another thread runs Python (the main
thread reading a big config, the reconciler applying it), every release costs the check worker
the GIL for a whole switch interval before it gets it back, so probes queue behind the busy
threads and start late. Here a probe gives the GIL up only where it really waits: in the
reactor's `epoll_wait`, once per loop pass for all its probes.

Errors come back as numbers (`errno`), never as exceptions: the caller maps them to outcomes.
"""

from libc.errno cimport errno, EINPROGRESS, EINTR
from libc.string cimport memset, memcpy
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING, PyBytes_GET_SIZE

cdef extern from "<sys/socket.h>" nogil:
    ctypedef unsigned int socklen_t
    ctypedef unsigned short sa_family_t
    struct sockaddr:
        sa_family_t sa_family
    struct linger:
        int l_onoff
        int l_linger
    int socket(int domain, int type, int protocol)
    int setsockopt(int fd, int level, int name, const void *val, socklen_t len)
    int getsockopt(int fd, int level, int name, void *val, socklen_t *len)
    int connect(int fd, const sockaddr *addr, socklen_t len)
    int bind(int fd, const sockaddr *addr, socklen_t len)
    ssize_t send(int fd, const void *buf, size_t n, int flags)
    ssize_t recv(int fd, void *buf, size_t n, int flags)
    enum:
        AF_INET
        AF_INET6
        SOCK_STREAM
        SOCK_NONBLOCK
        SOCK_CLOEXEC
        SOL_SOCKET
        SO_LINGER
        SO_ERROR
        MSG_NOSIGNAL

cdef extern from "<netinet/in.h>" nogil:
    struct in_addr:
        unsigned int s_addr
    struct sockaddr_in:
        sa_family_t sin_family
        unsigned short sin_port
        in_addr sin_addr
    struct in6_addr:
        unsigned char s6_addr[16]
    struct sockaddr_in6:
        sa_family_t sin6_family
        unsigned short sin6_port
        unsigned int sin6_flowinfo
        in6_addr sin6_addr
        unsigned int sin6_scope_id
    unsigned short htons(unsigned short)

cdef extern from "<sys/epoll.h>" nogil:
    union epoll_data_t:
        void *ptr
        int fd
        unsigned int u32
        unsigned long u64
    struct epoll_event:
        unsigned int events
        epoll_data_t data
    int epoll_ctl(int epfd, int op, int fd, epoll_event *event)
    enum:
        EPOLL_CTL_ADD

cdef extern from "<unistd.h>" nogil:
    int close(int fd)

def engine_name():
    return "cython"


cdef union _addr:
    sockaddr_in v4
    sockaddr_in6 v6


cdef socklen_t _fill(_addr *a, int family, bytes ip, int port) except 0:
    cdef Py_ssize_t n = PyBytes_GET_SIZE(ip)
    memset(a, 0, sizeof(_addr))
    if family == AF_INET and n == 4:
        a.v4.sin_family = AF_INET
        a.v4.sin_port = htons(<unsigned short>port)
        memcpy(&a.v4.sin_addr, PyBytes_AS_STRING(ip), 4)
        return sizeof(sockaddr_in)
    if family == AF_INET6 and n == 16:
        a.v6.sin6_family = AF_INET6
        a.v6.sin6_port = htons(<unsigned short>port)
        memcpy(&a.v6.sin6_addr, PyBytes_AS_STRING(ip), 16)
        return sizeof(sockaddr_in6)
    raise ValueError(f"address of {n} bytes for family {family}")


def start(int fd, int family, bytes ip, int port, bytes source, object ep, unsigned int events):
    """Open (when `fd` < 0) a non-blocking stream socket of `family`, set SO_LINGER 0, bind it
    to `source` (packed address, or empty), connect it to `ip`:`port` and, once the connect
    is under way or done, add it to the epoll set `ep` (a `select.epoll`) for `events`.

    Returns (fd, err, local): err 0 connected, EINPROGRESS under way (both registered), else
    the connect failed (`local` False) or a local step did (`local` True); on failure the
    descriptor is closed and fd is -1.
    """
    cdef _addr dst, src
    cdef socklen_t dlen = _fill(&dst, family, ip, port)
    cdef socklen_t slen = 0
    if PyBytes_GET_SIZE(source):
        slen = _fill(&src, family, source, 0)
    cdef linger lg
    cdef epoll_event ev
    cdef int err
    cdef int epfd = ep.fileno()
    if fd < 0:
        fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)
        if fd < 0:
            return (-1, errno, True)
    lg.l_onoff = 1
    lg.l_linger = 0
    if setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) != 0:
        err = errno
        close(fd)
        return (-1, err, True)
    if slen and bind(fd, <sockaddr *>&src, slen) != 0:
        err = errno
        close(fd)
        return (-1, err, True)
    err = 0
    if connect(fd, <sockaddr *>&dst, dlen) != 0:
        err = errno
        if err != EINPROGRESS:
            close(fd)
            return (-1, err, False)
    ev.events = events
    ev.data.u64 = 0
    ev.data.fd = fd
    if epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0:
        err = errno
        close(fd)
        return (-1, err, True)
    return (fd, err, False)


def so_error(int fd):
    """The socket's pending error (SO_ERROR), or the errno of asking for it."""
    cdef int val = 0
    cdef socklen_t n = sizeof(val)
    if getsockopt(fd, SOL_SOCKET, SO_ERROR, &val, &n) != 0:
        return errno
    return val


def send_from(int fd, bytes data, Py_ssize_t offset):
    """Send `data[offset:]`: the number of bytes sent, or -errno (-EAGAIN: try again later)."""
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
    cdef ssize_t sent
    if offset >= n:
        return 0
    while True:
        sent = send(fd, PyBytes_AS_STRING(data) + offset, <size_t>(n - offset), MSG_NOSIGNAL)
        if sent >= 0:
            return sent
        if errno != EINTR:
            return -errno


def receive(int fd, Py_ssize_t n):
    """Up to `n` bytes (b"" at the end of the stream), or an errno (EAGAIN: nothing yet)."""
    cdef bytes buf = PyBytes_FromStringAndSize(NULL, n)
    cdef ssize_t got
    while True:
        got = recv(fd, PyBytes_AS_STRING(buf), <size_t>n, 0)
        if got >= 0:
            break
        if errno != EINTR:
            return errno
    if got == n:
        return buf
    return buf[:got]


def close_fd(int fd):
    """Close a descriptor (the epoll set forgets it by itself)."""
    close(fd)
