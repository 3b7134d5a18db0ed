# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False, cdivision=True
"""Compiled table engine: the hot loops of the weighted Maglev new-flow table as typed C loops.

Owns xxHash64 of a u64, the fill of the bucket -> owner table (as indices into a sorted key
list), turning such a table back into addresses, and the bucket-by-bucket comparison of two
tables (churn). The fill runs without the GIL over C arrays (uint64 folded keys, skips and
cursors, an int table); no Python object is touched inside it. The algorithm and the shapes are
documented in `maglev.table`, which selects between the twins and validates inputs. Pure and
deterministic; called on any thread. `_table_py.py` is its line-for-line twin (a hypothesis test
asserts they agree).
"""

from cpython cimport array
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport int32_t, uint64_t
import array as _array

cdef uint64_t _M32 = 0xFFFFFFFF
cdef uint64_t _P1 = 11400714785074694791
cdef uint64_t _P2 = 14029467366897019727
cdef uint64_t _P3 = 1609587929392839161
cdef uint64_t _P4 = 9650029242287828579
cdef uint64_t _P5 = 2870177450012600261
# clib_xxhash's seed (the golden-ratio constant) with xxHash64's final-round terms for one
# 8-byte lane already folded in: h = seed + P5 + len (C unsigned arithmetic wraps, as VPP's).
cdef uint64_t _XXH_SEED = <uint64_t>0x9E3779B97F4A7C13 + _P5 + 8

cdef array.array _INT = _array.array("i")
cdef array.array _LONG = _array.array("q")


def engine_name():
    return "cython"


cdef inline uint64_t _rotl(uint64_t x, int r) noexcept nogil:
    return (x << r) | (x >> (64 - r))


cdef inline uint64_t _xxh(uint64_t key) noexcept nogil:
    cdef uint64_t k = _rotl(key * _P2, 31) * _P1
    cdef uint64_t h = _XXH_SEED ^ k
    h = _rotl(h, 27) * _P1 + _P4
    h ^= h >> 33
    h = h * _P2
    h ^= h >> 29
    h = h * _P3
    h ^= h >> 32
    return h


def xxhash_u64(key):
    """VPP's `clib_xxhash`: xxHash64 of a single u64 with the plugin's fixed seed."""
    # The conversion to uint64_t raises OverflowError out of range; the twin checks the same.
    return _xxh(<uint64_t>key)


cdef inline uint64_t _le64(const unsigned char* p) noexcept nogil:
    # Assembled byte by byte: the halves are little-endian whatever this machine's order.
    cdef uint64_t v = 0
    cdef int i
    for i in range(7, -1, -1):
        v = (v << 8) | p[i]
    return v


cdef uint64_t _fold(object key) except? 0:
    """A0 ^ A1: the address's two little-endian u64 halves, as the plugin seeds with them."""
    if not isinstance(key, bytes) or len(<bytes>key) != 16:
        raise ValueError("an address key is 16 bytes (ip46)")
    cdef const unsigned char* p = <bytes>key
    return _le64(p) ^ _le64(p + 8)


def owner_table(keys, weights, Py_ssize_t m):
    """'i' [m]: the index in `keys` of each bucket's owner, -1 where the bucket drops."""
    cdef Py_ssize_t n = len(keys)
    if len(weights) != n:
        raise ValueError("keys and weights differ in length")
    if m <= 0:
        return array.clone(_INT, 0, zero=False)
    cdef uint64_t mask = <uint64_t>(m - 1)
    cdef uint64_t* folds = NULL
    cdef long long* w = NULL
    cdef int32_t* owner = NULL
    cdef uint64_t* skips = NULL
    cdef uint64_t* cursors = NULL
    cdef long long max_w = 0
    cdef Py_ssize_t total = 0
    cdef Py_ssize_t limit, count, k
    cdef long long r
    cdef uint64_t seed
    cdef array.array out
    cdef int* table
    cdef Py_ssize_t b
    try:
        folds = <uint64_t*>PyMem_Malloc((n + 1) * sizeof(uint64_t))
        w = <long long*>PyMem_Malloc((n + 1) * sizeof(long long))
        if folds == NULL or w == NULL:
            raise MemoryError()
        for k in range(n):
            folds[k] = _fold(keys[k])
            w[k] = weights[k]
            if w[k] > 0:
                max_w = max(max_w, w[k])
                total = min(total + <Py_ssize_t>min(w[k], <long long>m), m)
        # Every entry claims one bucket per pass, so entries past the first m never get one: the
        # first pass has filled the table. Building only `limit` of them bounds the work by m.
        limit = total
        owner = <int32_t*>PyMem_Malloc((limit + 1) * sizeof(int32_t))
        skips = <uint64_t*>PyMem_Malloc((limit + 1) * sizeof(uint64_t))
        cursors = <uint64_t*>PyMem_Malloc((limit + 1) * sizeof(uint64_t))
        if owner == NULL or skips == NULL or cursors == NULL:
            raise MemoryError()
        count = 0
        r = 0
        with nogil:
            while r < max_w and count < limit:
                for k in range(n):
                    if w[k] > r:
                        seed = _xxh(folds[k] ^ <uint64_t>r)
                        owner[count] = <int32_t>k
                        skips[count] = ((seed & _M32) | 1) & mask
                        cursors[count] = (seed >> 32) & mask
                        count += 1
                        if count == limit:
                            break
                r += 1
        out = array.clone(_INT, m, zero=False)
        table = out.data.as_ints
        with nogil:
            for b in range(m):
                table[b] = -1
            if count:
                _fill(table, owner, skips, cursors, count, m, mask)
        return out
    finally:
        PyMem_Free(folds)
        PyMem_Free(w)
        PyMem_Free(owner)
        PyMem_Free(skips)
        PyMem_Free(cursors)


cdef void _fill(
    int* table,
    const int32_t* owner,
    const uint64_t* skips,
    uint64_t* cursors,
    Py_ssize_t count,
    Py_ssize_t m,
    uint64_t mask,
) noexcept nogil:
    # Round-robin over the entries, each taking the next free bucket along its permutation
    # (skip is odd and m a power of two, so the walk reaches every bucket) until all m are taken.
    cdef Py_ssize_t done = 0
    cdef Py_ssize_t i
    cdef uint64_t pos, skip
    while True:
        for i in range(count):
            pos = cursors[i]
            skip = skips[i]
            while table[pos] >= 0:
                pos = (pos + skip) & mask
            table[pos] = owner[i]
            cursors[i] = (pos + skip) & mask
            done += 1
            if done == m:
                return


def resolve(owners, values):
    """`values[i]` for each bucket's owner index i, None where it is negative (drop)."""
    cdef const int[:] o = owners
    cdef Py_ssize_t n = len(values)
    cdef list vals = list(values)
    cdef list out = [None] * o.shape[0]
    cdef Py_ssize_t b
    cdef int i
    for b in range(o.shape[0]):
        i = o[b]
        if i >= 0:
            if i >= n:
                raise IndexError("owner index out of range")
            out[b] = vals[i]
    return out


def compare_owners(old, new, Py_ssize_t n):
    """(moved, gained 'q' [n], lost 'q' [n]) between two owner tables over the same n keys."""
    cdef const int[:] a = old
    cdef const int[:] c = new
    if a.shape[0] != c.shape[0]:
        raise ValueError("the two tables differ in size")
    cdef array.array gained_a = array.clone(_LONG, n, zero=True)
    cdef array.array lost_a = array.clone(_LONG, n, zero=True)
    cdef long long* gained = gained_a.data.as_longlongs
    cdef long long* lost = lost_a.data.as_longlongs
    cdef Py_ssize_t moved = 0
    cdef Py_ssize_t b
    cdef int x, y
    for b in range(a.shape[0]):
        x = a[b]
        y = c[b]
        if x < -1 or x >= n or y < -1 or y >= n:
            raise ValueError("owner index out of range")
        if x != y:
            moved += 1
            if y >= 0:
                gained[y] += 1
            if x >= 0:
                lost[x] += 1
    return moved, gained_a, lost_a


__all__ = ["compare_owners", "engine_name", "owner_table", "resolve", "xxhash_u64"]
