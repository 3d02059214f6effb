"""A batch's facts as columns: each fact path factorised into codes and distinct values.

Rules and model features that read the same path share its column; a test or a contribution is then computed once
per distinct value and spread with numpy's indexing. Values are told apart by their type as well as their value
(``True`` is not ``1``, ``-0.0`` is not ``0.0``), so that a function of the value gives each lead what it would give
the lead's own value.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pyarrow as pa

__all__ = ["Frame", "factorise"]

_Facts = dict[str, object]
Codes = npt.NDArray[np.intp]


def _key(value: object) -> Hashable:
    """A value's identity for factorising: its type and value (and a zero's sign)."""
    if value.__class__ is float and value == 0.0:
        return (float, repr(value))
    return (value.__class__, value)


class Frame(Protocol):
    """What the model's and the rules' columns read of a batch's facts (the block's frame,
    :mod:`worker.columnar._whole`): each fact path as codes into its distinct values."""

    @property
    def facts(self) -> Sequence[_Facts]:
        """The rows as facts dicts (for what only a function of the facts can work out)."""
        ...

    def __len__(self) -> int: ...

    def codes(self, path: str) -> tuple[Codes, list[object], list[int]]:
        """The column as codes into its distinct values, the distinct values, and the first row with each."""
        ...

    def condition_mask(
        self, condition: Callable[[Any], bool], guard: str | None, reads: Sequence[str], rows: Codes | None = None
    ) -> npt.NDArray[np.bool_]:
        """Whether ``condition`` (reading the facts ``reads``; False where ``guard`` is missing) holds at each of
        ``rows`` (or every row)."""
        ...


def factorise(column: list[object]) -> tuple[Codes, list[object], list[int]]:
    """``column`` as codes into its distinct values (told apart by type and value, see :func:`_key`), the distinct
    values, and the first place of each."""
    found = _arrow_codes(column) if len(column) >= _ARROW_FROM else _plain_codes(column)
    if found is not None:
        return found
    index: dict[Hashable, int] = {}
    codes: list[int] = []
    uniques: list[object] = []
    first: list[int] = []
    for k, value in enumerate(column):
        try:
            key = _key(value)
            code = index.get(key)
        except TypeError:  # an unhashable value (a list): a value of its own
            key, code = None, None
        if code is None:
            code = len(uniques)
            if key is not None:
                index[key] = code
            uniques.append(value)
            first.append(k)
        codes.append(code)
    return np.array(codes, dtype=np.intp), uniques, first


_ARROW_FROM = 512  # rows from which Arrow's encoding beats a Python loop (its calls cost a fixed ~30 µs)
_ARROW = {str: pa.string(), int: pa.int64(), float: pa.float64()}
_NONE = type(None)


_PLAIN = frozenset({str, int, bool})  # values of one of these types are told apart by == alone (True is not 1 here)


def _plain_codes(column: list[object]) -> tuple[Codes, list[object], list[int]] | None:
    """:func:`factorise` of a column of one plain type (text, integers or booleans) and None, by a dict of the
    values themselves; None for anything else."""
    kinds = set(map(type, column))
    kinds.discard(_NONE)
    if len(kinds) > 1 or not kinds <= _PLAIN:
        return None
    index: dict[object, int] = {}
    add = index.setdefault
    codes = np.array([add(value, len(index)) for value in column], dtype=np.intp)
    if not len(codes):
        return codes, [], []
    newest = np.maximum.accumulate(codes)  # codes are numbered in order of first appearance
    first = np.flatnonzero(np.concatenate(([True], newest[1:] > newest[:-1])))
    return codes, list(index), first.tolist()


def _arrow_codes(column: list[object]) -> tuple[Codes, list[object], list[int]] | None:
    """:meth:`Frame.codes` by Arrow's dictionary encoding, for a column of one type (text, integers or floats) and
    None; None for anything else (mixed types, integers beyond 64 bits, text Arrow cannot hold), which the caller
    factorises in Python. Arrow tells values apart bit for bit (``-0.0`` is not ``0.0``) and lists them in order of
    first appearance."""
    kinds = set(map(type, column))
    kinds.discard(_NONE)
    if len(kinds) > 1:
        return None
    if not kinds:
        return np.zeros(len(column), dtype=np.intp), [None], [0]
    arrow_type = _ARROW.get(kinds.pop())
    if arrow_type is None:
        return None
    try:
        encoded = pa.array(column, type=arrow_type).dictionary_encode()
    except (pa.ArrowException, OverflowError, UnicodeError):
        return None
    uniques: list[object] = encoded.dictionary.to_pylist()
    if encoded.null_count:
        uniques.append(None)
    codes = np.asarray(encoded.indices.fill_null(len(uniques) - 1).to_numpy(zero_copy_only=False), dtype=np.intp)
    _, first = np.unique(codes, return_index=True)
    return codes, uniques, first.tolist()
