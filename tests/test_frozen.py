"""`fast_frozen_init`: the same dataclass, filled through its slots."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from voiplog._frozen import fast_frozen_init
from voiplog.cdr import CallRecord, RegistrationRecord
from voiplog.cdr.record import MediaStream


def _sample() -> type:
    """A new frozen, slotted dataclass with each kind of field."""

    @dataclasses.dataclass(frozen=True, slots=True)
    class Sample:
        a: int
        b: str = "b"
        c: dict = dataclasses.field(default_factory=dict)
        d: tuple = ()

    return Sample


_Generated = _sample()
_Fast = fast_frozen_init(_sample())


def test_same_values_as_the_generated_init():
    for args, kwargs in (((1,), {}), ((1, "x"), {"d": (2,)}), ((), {"a": 3, "c": {"k": 1}})):
        fast, generated = _Fast(*args, **kwargs), _Generated(*args, **kwargs)
        assert dataclasses.astuple(fast) == dataclasses.astuple(generated)


def test_a_factory_default_is_new_for_each_instance():
    one, two = _Fast(1), _Fast(2)
    assert one.c == {} and two.c == {}
    assert one.c is not two.c
    given = {"k": 1}
    assert _Fast(1, c=given).c is given


def test_instances_stay_frozen_and_replace_works():
    fast = _Fast(1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.a = 2  # type: ignore[misc]
    changed = dataclasses.replace(fast, b="y")
    assert (changed.a, changed.b, changed.c) == (1, "y", {})
    assert changed.c is fast.c  # replace passes every field on, as dataclasses does


def test_missing_argument_is_refused_as_before():
    with pytest.raises(TypeError):
        _Fast()  # type: ignore[call-arg]


def test_post_init_is_refused():
    with pytest.raises(TypeError, match="__post_init__"):

        @fast_frozen_init
        @dataclasses.dataclass(frozen=True, slots=True)
        class _Checked:
            a: int

            def __post_init__(self) -> None:
                pass


@pytest.mark.parametrize("cls", [CallRecord, RegistrationRecord, MediaStream])
def test_record_classes_keep_their_signature(cls):
    names = [f.name for f in dataclasses.fields(cls)]
    assert list(inspect.signature(cls.__init__).parameters)[1:] == names
