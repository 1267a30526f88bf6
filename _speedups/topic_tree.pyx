# cython: language_level=3
"""Subscription trie keyed by topic level, Cython twin of ``broker/routing/topic_tree.py``.

Same walk as the reference: follow the literal child and the ``+`` child, collect the ``#`` child
at every node (MQTT-4.7.1-2: ``a/#`` also matches ``a``); no wildcard at the first level matches a
topic name starting with ``$`` (MQTT-4.7.2-1). ``match`` returns ``{key: max qos}`` (MQTT-3.3.5-1).

The walk keeps an explicit stack rather than recursing, so a filter with thousands of levels
cannot exhaust the C stack.
"""

from cpython.dict cimport PyDict_GetItem, PyDict_GetItemWithError, PyDict_Next, PyDict_SetItem
from cpython.dict cimport PyDict_Update
from cpython.list cimport PyList_GET_ITEM
from cpython.long cimport PyLong_AsLong
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.object cimport PyObject

cdef str _PLUS = "+"
cdef str _HASH = "#"


cdef class _Node:
    cdef readonly dict children  # level -> _Node
    cdef readonly dict subscribers  # key -> qos

    def __cinit__(self) -> None:
        self.children = {}
        self.subscribers = {}


cdef int _merge(dict result, dict subscribers) except -1:
    cdef Py_ssize_t i = 0
    cdef PyObject* key
    cdef PyObject* qos
    cdef PyObject* held
    if not subscribers:
        return 0
    if not result:  # the usual case: one matching node; a C-level dict copy
        PyDict_Update(result, subscribers)
        return 0
    while PyDict_Next(subscribers, &i, &key, &qos):
        held = PyDict_GetItemWithError(result, <object>key)
        if held == NULL or PyLong_AsLong(<object>held) < PyLong_AsLong(<object>qos):
            PyDict_SetItem(result, <object>key, <object>qos)
    return 0


cdef class TopicTree:
    cdef readonly _Node _root
    cdef Py_ssize_t _count

    def __cinit__(self) -> None:
        self._root = _Node()
        self._count = 0

    def __len__(self) -> int:
        """Number of (filter, key) subscriptions held."""
        return self._count

    def subscribe(self, str topic_filter not None, key, int qos) -> bool:
        """Add or replace ``key``'s subscription to ``topic_filter``; True if it is new."""
        cdef _Node node = self._root
        cdef PyObject* child
        cdef _Node created
        for level in topic_filter.split("/"):
            child = PyDict_GetItem(node.children, level)
            if child == NULL:
                created = _Node()
                node.children[level] = created
                node = created
            else:
                node = <_Node>child
        cdef bint new = key not in node.subscribers
        node.subscribers[key] = qos
        if new:
            self._count += 1
        return new

    def unsubscribe(self, str topic_filter not None, key) -> bool:
        """Remove ``key``'s subscription to ``topic_filter``; True if there was one."""
        cdef list path = []
        cdef _Node node = self._root
        cdef PyObject* child
        for level in topic_filter.split("/"):
            child = PyDict_GetItem(node.children, level)
            if child == NULL:
                return False
            path.append((node, level))
            node = <_Node>child
        if node.subscribers.pop(key, None) is None:
            return False
        self._count -= 1
        # Prune the now-empty branch so the trie does not grow with churn.
        cdef _Node parent, emptied
        for parent, level in reversed(path):
            emptied = parent.children[level]
            if emptied.subscribers or emptied.children:
                break
            del parent.children[level]
        return True

    def match(self, str topic not None) -> dict:
        cdef dict result = {}
        cdef list levels = topic.split("/")
        cdef Py_ssize_t last = len(levels)
        cdef bint dollar = len(topic) > 0 and topic[0] == "$"
        # Nodes still to expand (the list owns the references) with their depths beside them in
        # C; the stack never holds more than one pending node per level plus two.
        cdef list nodes = [self._root]
        cdef Py_ssize_t small[32]
        cdef Py_ssize_t* depths = small
        if last + 2 > 32:
            depths = <Py_ssize_t*>PyMem_Malloc((last + 2) * sizeof(Py_ssize_t))
            if depths == NULL:
                raise MemoryError()
        cdef Py_ssize_t top = 0
        cdef Py_ssize_t depth
        cdef _Node node
        cdef dict children
        cdef PyObject* found
        cdef bint wild
        depths[0] = 0
        try:
            while top >= 0:
                node = nodes.pop()
                depth = depths[top]
                top -= 1
                children = node.children
                if not children:
                    if depth == last:
                        _merge(result, node.subscribers)
                    continue
                wild = not (dollar and depth == 0)
                if wild:
                    found = PyDict_GetItem(children, _HASH)
                    if found != NULL:
                        _merge(result, (<_Node>found).subscribers)
                if depth == last:
                    _merge(result, node.subscribers)
                    continue
                found = PyDict_GetItem(children, <object>PyList_GET_ITEM(levels, depth))
                if found != NULL:
                    nodes.append(<_Node>found)
                    top += 1
                    depths[top] = depth + 1
                if wild:
                    found = PyDict_GetItem(children, _PLUS)
                    if found != NULL:
                        nodes.append(<_Node>found)
                        top += 1
                        depths[top] = depth + 1
        finally:
            if depths != small:
                PyMem_Free(depths)
        return result

    def filters_of(self, key):
        """All (filter, qos) of one key; a full walk, for tests and introspection only."""
        cdef _Node node
        stack = [(self._root, "")]
        while stack:
            node, prefix = stack.pop()
            if key in node.subscribers:
                yield prefix[1:], node.subscribers[key]
            for level, child in node.children.items():
                stack.append((child, f"{prefix}/{level}"))
