# cython: boundscheck=False, wraparound=False
"""Frozen, slotted dataclasses made from C.

A message's description (`SipMessage`, `NameAddr`, `HepMessage`, the SDP records)
is a frozen dataclass with slots. Calling it runs its `__init__` in Python (about
0.3 µs for four fields, 0.7 µs for thirteen); `slot_setters` takes the slots'
member descriptors once, and `filled` allocates an instance as `object.__new__`
does and stores each value through its descriptor, as the `__init__` of
`voiplog._frozen.fast_frozen_init` does, without the interpreter in between. The
instance is the one that `__init__` would make: same type, same slots, frozen.
"""

from cpython.object cimport PyObject, PyTypeObject
from cpython.ref cimport Py_DECREF
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE


cdef extern from "Python.h":
    ctypedef int (*_descr_set)(PyObject *, PyObject *, PyObject *)
    ctypedef PyObject *(*_alloc)(PyTypeObject *, Py_ssize_t)

    ctypedef struct _SlotType "PyTypeObject":
        _descr_set tp_descr_set
        _alloc tp_alloc

    PyTypeObject *Py_TYPE(PyObject *)


cdef inline tuple slot_setters(type cls):
    """The member descriptors of the slots of dataclass `cls`'s fields, in their
    order; raises ImportError when `__init__` would do more than fill them (a
    `__post_init__`, a field that is not a plain slot): the module is then not
    used, and the reference runs instead."""
    from dataclasses import fields
    from types import MemberDescriptorType

    if hasattr(cls, "__post_init__"):
        raise ImportError(f"{cls.__name__} has a __post_init__: it must be called")
    setters = []
    for field in fields(cls):
        setter = cls.__dict__.get(field.name)
        if type(setter) is not MemberDescriptorType:
            raise ImportError(f"{cls.__name__}.{field.name} is not a slot")
        setters.append(setter)
    return tuple(setters)


cdef inline object filled(type cls, tuple setters, tuple values):
    """An instance of `cls` with each slot of `setters` set to the value of
    `values` at the same place (as many values as setters)."""
    cdef Py_ssize_t i
    cdef PyObject *setter
    if PyTuple_GET_SIZE(values) != PyTuple_GET_SIZE(setters):
        raise TypeError(f"{cls.__name__} takes {PyTuple_GET_SIZE(setters)} values")
    cdef PyObject *raw = (<_SlotType *>cls).tp_alloc(<PyTypeObject *>cls, 0)
    if raw == NULL:
        raise MemoryError()
    instance = <object>raw
    Py_DECREF(instance)  # the reference tp_alloc gave is now `instance`'s
    for i in range(PyTuple_GET_SIZE(setters)):
        setter = PyTuple_GET_ITEM(setters, i)
        if (<_SlotType *>Py_TYPE(setter)).tp_descr_set(
            setter, raw, PyTuple_GET_ITEM(values, i)
        ) < 0:
            raise TypeError(f"cannot set the slots of {cls.__name__}")
    return instance
