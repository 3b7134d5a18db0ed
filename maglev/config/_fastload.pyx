# cython: language_level=3
"""The compiled fast-load engine: libyaml's C parser driven directly, its events into values.

The twin `_fastload_py` reads the same events through PyYAML's `CParser`, which builds a Python
event object (with two mark objects, a tuple and the decoded text) for each of them: on the
2.4 MiB benchmark config, 442,000 events, and most of the loading time. Here each event is read
into a C struct, only a scalar's text becomes a Python string, and the loop is otherwise the
twin's line for line: the same value and lines, the same checks in the same order, so the same
exception at the same event (`maglev.config.fastload` says what is taken and what is handed
over). The parser is fed the UTF-8 bytes of the text exactly as `CParser` feeds it, with no
encoding set, so libyaml reads and refuses the same characters. Marks are 0-based (+1 here, as
there). Called on whichever thread loads the config; no state.
"""

from cpython.dict cimport PyDict_GetItem
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.ref cimport PyObject
from cpython.unicode cimport PyUnicode_DecodeUTF8

import yaml

from maglev.config import limits
from maglev.config._fastload_types import MERGE, STR, TooMany, Unsupported, let_others_run


cdef extern from "yaml.h":
    ctypedef enum yaml_event_type_t:
        YAML_NO_EVENT
        YAML_STREAM_START_EVENT
        YAML_STREAM_END_EVENT
        YAML_DOCUMENT_START_EVENT
        YAML_DOCUMENT_END_EVENT
        YAML_ALIAS_EVENT
        YAML_SCALAR_EVENT
        YAML_SEQUENCE_START_EVENT
        YAML_SEQUENCE_END_EVENT
        YAML_MAPPING_START_EVENT
        YAML_MAPPING_END_EVENT

    ctypedef struct yaml_mark_t:
        size_t index
        size_t line
        size_t column

    # Only the members read here; the C compiler has the full definitions.
    ctypedef struct _yaml_scalar_data_t:
        unsigned char *anchor
        unsigned char *tag
        unsigned char *value
        size_t length
        int plain_implicit

    ctypedef struct _yaml_collection_start_data_t:
        unsigned char *anchor
        unsigned char *tag

    ctypedef union _yaml_event_data_t:
        _yaml_scalar_data_t scalar
        _yaml_collection_start_data_t sequence_start
        _yaml_collection_start_data_t mapping_start

    ctypedef struct yaml_event_t:
        yaml_event_type_t type
        _yaml_event_data_t data
        yaml_mark_t start_mark

    ctypedef struct yaml_parser_t:
        pass

    int yaml_parser_initialize(yaml_parser_t *parser)
    void yaml_parser_delete(yaml_parser_t *parser)
    void yaml_parser_set_input_string(
        yaml_parser_t *parser, const unsigned char *input, size_t size
    )
    int yaml_parser_parse(yaml_parser_t *parser, yaml_event_t *event) nogil
    void yaml_event_delete(yaml_event_t *event)


cdef struct Frame:
    # The C part of a collection waiting on the stack (its Python part: `stack`).
    bint is_list
    size_t key_line
    size_t key_column
    size_t open_line
    size_t open_column


cdef struct Event:
    # What the loop reads of an event; libyaml's own is freed as soon as this is filled.
    yaml_event_type_t kind
    bint decorated  # an anchor or an explicit tag
    bint plain  # a scalar without quotes or tag (PyYAML's implicit[0])
    size_t line
    size_t column


# Every this many events (about a millisecond of parsing) the loop calls a Python function
# (`let_others_run`). The loop itself runs no Python bytecode for most events (a plain text seen
# before is a dict hit), and only the bytecode interpreter honours another thread's request for
# the GIL (made after it waited one switch interval, 5 ms): without the call the probes and the
# reconciler would wait for the whole load. Releasing the GIL here instead does not help: the
# waiting thread is woken, but this one takes the GIL back first, and each wake-up restarts the
# waiter's interval, so it never asks (measured: the whole 0.3 s load was one stall).
cdef enum:
    YIELD_EVERY = 1024

cdef object _MISSING = object()


def engine_name():
    return "cython"


def load(text, resolvers, construct, typed_max, with_lines=True):
    """(the document's value, the lines of its keys and items: {} unless `with_lines`);
    Unsupported if out of scope, TooMany past `limits.MAX_NODES`. The arguments are those of
    `fastload.load`."""
    # Encoded as CParser encodes a str (a lone surrogate fails here, as it fails there).
    cdef bytes data = (<str?>text).encode("utf-8")
    cdef yaml_parser_t parser
    if yaml_parser_initialize(&parser) == 0:
        raise MemoryError
    try:
        yaml_parser_set_input_string(
            &parser, <const unsigned char *><char *>data, <size_t>len(data)
        )
        return _load(&parser, resolvers, construct, typed_max, with_lines)
    except yaml.YAMLError:
        # As the twin: an error from the callbacks is handed over like a syntax error.
        raise Unsupported("a YAML error") from None
    finally:
        yaml_parser_delete(&parser)


cdef object _next(yaml_parser_t *parser, Event *ev):
    """Parse the next event into `ev`; a scalar's text is returned (None for other events)."""
    cdef yaml_event_t event
    cdef int ok
    ok = yaml_parser_parse(parser, &event)
    if ok == 0:
        # Syntax and reader errors are reported by the full loader, with its wording.
        raise Unsupported("a YAML error")
    ev.kind = event.type
    ev.line = event.start_mark.line
    ev.column = event.start_mark.column
    ev.decorated = False
    ev.plain = False
    if event.type == YAML_SCALAR_EVENT:
        ev.decorated = event.data.scalar.anchor != NULL or event.data.scalar.tag != NULL
        ev.plain = event.data.scalar.plain_implicit == 1
        try:
            return PyUnicode_DecodeUTF8(
                <char *>event.data.scalar.value, event.data.scalar.length, "strict"
            )
        finally:
            yaml_event_delete(&event)
    if event.type == YAML_MAPPING_START_EVENT:
        ev.decorated = (
            event.data.mapping_start.anchor != NULL or event.data.mapping_start.tag != NULL
        )
    elif event.type == YAML_SEQUENCE_START_EVENT:
        ev.decorated = (
            event.data.sequence_start.anchor != NULL or event.data.sequence_start.tag != NULL
        )
    yaml_event_delete(&event)
    return None


cdef object _load(yaml_parser_t *parser, object resolvers, object construct, object typed_max,
                  bint track):
    cdef Event ev
    cdef object wildcard = resolvers.get(None, [])
    # Resolving a plain scalar runs up to a dozen regexes; configs repeat most of theirs
    # (`tcp`, `80`, `100`), so each distinct text is resolved once.
    cdef dict plain = {}
    # The first characters some resolver is for (all of them if one is for any): a plain
    # scalar starting with another one is a string without a look-up.
    cdef bint typed[128]
    cdef Py_ssize_t i
    for i in range(128):
        typed[i] = bool(wildcard) or chr(i) in resolvers
    cdef dict lines = {}
    cdef Py_ssize_t max_nodes = limits.MAX_NODES
    # A scalar sits one level below its collection: no collection may open at the last level
    # that still has room for a child. (An empty one there is fine for the full loader, which
    # then takes the document.)
    cdef Py_ssize_t max_open = limits.MAX_DEPTH - 1
    cdef Py_ssize_t max_chars = limits.MAX_CHARS

    _next(parser, &ev)  # stream start
    _next(parser, &ev)
    if ev.kind == YAML_STREAM_END_EVENT:
        return None, lines
    if ev.kind != YAML_DOCUMENT_START_EVENT:
        raise Unsupported("no document")

    # The open collection lives in these locals; the ones around it wait on `stack` as
    # (container, its lines, pending key), and on `frames` (at the same depth) as the rest.
    cdef list stack = []
    cdef Frame *frames = <Frame *>PyMem_Malloc((max_open + 1) * sizeof(Frame))
    if frames == NULL:
        raise MemoryError
    try:
        return _events(parser, resolvers, construct, typed_max, track, wildcard, plain, typed,
                       lines, max_nodes, max_open, max_chars, stack, frames)
    finally:
        PyMem_Free(frames)


cdef object _events(yaml_parser_t *parser, object resolvers, object construct,
                    object typed_max, bint track, object wildcard, dict plain, bint *typed,
                    dict lines, Py_ssize_t max_nodes, Py_ssize_t max_open,
                    Py_ssize_t max_chars, list stack, Frame *frames):
    """`_load`'s loop over the events (after the document start)."""
    cdef Event ev
    cdef Py_ssize_t nodes = 0, chars = 0, events = 0, depth = 0
    cdef object missing = _MISSING
    cdef PyObject *cached
    cdef object text, value
    cdef Frame *frame
    cdef object container = None
    cdef object at = {}  # a mapping's: key -> line; a list's: the line of each item
    cdef bint is_list = False
    cdef object key = missing
    # of the pending key, and where the open collection starts: both only read to place an error
    cdef size_t key_line = 0, key_column = 0, open_line = 0, open_column = 0
    cdef object root = missing
    cdef yaml_event_type_t kind
    while True:
        events += 1
        if events == YIELD_EVERY:
            events = 0
            let_others_run()
        text = _next(parser, &ev)
        kind = ev.kind
        if kind == YAML_SCALAR_EVENT:
            if ev.decorated:
                raise Unsupported("an anchor or a tag")
            nodes += 1
            chars += len(<str>text)
            if ev.plain and not _text_only(<str>text, typed):
                # resolved as the loader resolves it
                cached = PyDict_GetItem(plain, text)
                if cached == NULL:
                    value = _resolve(<str>text, resolvers, wildcard, construct, typed_max)
                    plain[text] = value
                else:
                    value = <object>cached
            else:
                value = text
            if is_list:
                if track:
                    (<list>at).append(ev.line + 1)
                (<list>container).append(value)
            elif key is missing:
                if container is None:  # a document that is one scalar
                    root = value
                    break
                if value in <dict>container:
                    raise Unsupported("a duplicate key")
                key = value
                key_line, key_column = ev.line, ev.column
                if track and isinstance(value, (str, int, float)):  # bool is an int
                    (<dict>at)[value] = key_line + 1
            else:
                (<dict>container)[key] = value
                key = missing
            if nodes > max_nodes:
                _too_many(container, is_list, key is missing, key_line, key_column,
                          open_line, open_column)
            if chars > max_chars:
                raise Unsupported("over a limit")  # refused by the loader, with its message
            continue
        if kind == YAML_MAPPING_START_EVENT or kind == YAML_SEQUENCE_START_EVENT:
            if ev.decorated:
                raise Unsupported("an anchor or a tag")
            nodes += 1
            if len(stack) >= max_open:
                raise Unsupported("over a limit")
            value = {} if kind == YAML_MAPPING_START_EVENT else []
            if is_list:
                if track:
                    (<list>at).append(ev.line + 1)
                (<list>container).append(value)
            elif key is missing:
                if container is not None:
                    raise Unsupported("a collection key")
            else:
                (<dict>container)[key] = value
                key = missing
            if nodes > max_nodes:
                _too_many(container, is_list, key is missing, key_line, key_column,
                          open_line, open_column)
            if container is not None:
                stack.append((container, at, key))
                frame = &frames[depth]
                frame.is_list = is_list
                frame.key_line, frame.key_column = key_line, key_column
                frame.open_line, frame.open_column = open_line, open_column
                depth += 1
            is_list = kind == YAML_SEQUENCE_START_EVENT
            container, key = value, missing
            if track:
                at = [] if is_list else {}
            open_line, open_column = ev.line, ev.column
            if root is missing:
                root = value
            continue
        if kind == YAML_MAPPING_END_EVENT or kind == YAML_SEQUENCE_END_EVENT:
            if track:
                lines[id(container)] = at
            if not stack:
                break
            container, at, key = <tuple>stack.pop()
            depth -= 1
            frame = &frames[depth]
            is_list = frame.is_list
            key_line, key_column = frame.key_line, frame.key_column
            open_line, open_column = frame.open_line, frame.open_column
            continue
        raise Unsupported("an alias")  # or anything else this path does not know

    _next(parser, &ev)
    if ev.kind != YAML_DOCUMENT_END_EVENT:
        raise Unsupported("an unfinished document")
    _next(parser, &ev)
    if ev.kind != YAML_STREAM_END_EVENT:
        raise Unsupported("more than one document")  # the full loader names the line
    return root, lines


cdef _too_many(object container, bint is_list, bint key_missing, size_t key_line,
               size_t key_column, size_t open_line, size_t open_column):
    """Raise TooMany for the child just placed, with `limits`' wording for its place: a
    mapping's key, or the value of a key, at the key; an item at the start of its list."""
    if container is None:  # the top level itself: a single node is never too many
        return
    if is_list:
        where = f"item [{len(<list>container) - 1}] of this list"
        raise TooMany(open_line + 1, open_column + 1, where)
    if key_missing:  # a value: placing it took its key off
        raise TooMany(key_line + 1, key_column + 1, "the value of this key")
    raise TooMany(key_line + 1, key_column + 1, "this key")


cdef object _resolve(str text, object resolvers, object wildcard, object construct,
                     object typed_max):
    """A plain scalar's value: PyYAML's resolution (first character, then regexes in order)."""
    if len(text) > typed_max or _dotted(text):
        return text
    for tag, regex in resolvers.get(text[:1], []) + wildcard:
        if regex.match(text):
            if tag == STR:
                return text
            if tag == MERGE:
                raise Unsupported("a merge key")
            return construct(tag, text)
    return text


cdef bint _dotted(str text):
    """Only digits and dots, and at least two dots (an IPv4 address): a string, as every
    resolver for a first digit or dot says (a float has one dot, an int or a date none), without
    running their regexes (a third of resolving a config of addresses)."""
    cdef Py_ssize_t dots = 0
    cdef Py_UCS4 c
    for c in text:
        if c == '.':
            dots += 1
        elif c < '0' or c > '9':
            return False
    return dots >= 2


cdef inline bint _text_only(str text, bint *typed):
    """Whether the plain scalar `text` is a string before any resolver looks at it: its first
    character (ASCII) starts no resolver's pattern (`typed`), or it is `_dotted`."""
    cdef Py_UCS4 c
    if len(text) == 0:
        return False  # null's
    c = text[0]
    if c < 128 and not typed[c]:
        return True
    return _dotted(text)
