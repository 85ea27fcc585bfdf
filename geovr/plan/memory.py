"""`LiveBytes`: the bytes of every tensor storage alive during a step, its peak, and what the peak
holds, on real or fake tensors (a fake tensor's storage has its real size).

A dispatch mode sees every storage an op creates and a weak reference tells when it dies (torch
keeps a storage's Python object as long as the storage lives). Tensors made before the step
(weights, optimizer state, inputs) are registered with `track`. O(1) per op, unlike
`torch.distributed._tools.mem_tracker.MemTracker`, whose per-op walk over every module's
statistics takes minutes at 2B sizes; `classify` then splits the peak by what each storage is, and
`timeline` gives the bytes alive by kind after every allocation, so a parallel layout that holds
a share of each kind can find its own peak (which need not be at the same moment as this one's).
"""
from __future__ import annotations

import weakref
from collections import defaultdict
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch._subclasses.fake_tensor import unset_fake_temporarily
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


@dataclass
class Timeline:
    """live[i, c]: bytes alive of category c (`categories`) just after the i-th allocation (float64
    [allocations, categories]). A category is a group's name (storages of that group still alive at
    the end of the step) or "act:<label>" for every other storage, by the label it was made under.
    Any non-negative weighting of the categories peaks at one of these rows."""

    categories: tuple[str, ...]
    live: torch.Tensor

    def peak(self, weights: dict[str, float]) -> tuple[float, dict[str, float]]:
        """The most bytes alive with each category weighted (a missing one weighs 0), and the
        weighted bytes by category at that moment."""
        w = torch.tensor([weights.get(c, 0.0) for c in self.categories], dtype=torch.float64)
        totals = self.live @ w
        row = int(torch.argmax(totals)) if len(totals) else 0
        at = self.live[row] * w if len(totals) else torch.zeros(len(self.categories), dtype=torch.float64)
        return float(totals[row]) if len(totals) else 0.0, dict(zip(self.categories, at.tolist()))


class LiveBytes(TorchDispatchMode):
    """live / peak: bytes now / at most; clock: counts allocations and frees (peak_clock: at the
    peak; a storage was alive then when born <= peak_clock < died); phase peaks: the
    most bytes alive while each `phase(name)` ran, and what was alive when it began."""

    def __init__(self, label: Callable[[], str] | None = None):
        """label: names where a storage is made (e.g. the model part running); "" without it."""
        super().__init__()
        self.clock, self.live, self.peak, self.peak_clock = 0, 0, 0, 0
        self._label = label or (lambda: "")
        self._records: list[list] = []  # [key, bytes, born, died or None, weakref, (op, shape, dtype), label]
        self._op = "input"
        self._alive: dict[int, int] = {}  # storage key -> its record
        self._phase: str | None = None
        self.phase_peak: dict[str, int] = defaultdict(int)
        self.phase_start: dict[str, int] = {}

    @staticmethod
    def _key(t: torch.Tensor) -> tuple[weakref.ref, int, int] | None:
        try:
            st = t.untyped_storage()
        except (NotImplementedError, RuntimeError):
            return None
        return st, st._cdata, st.nbytes()

    def track(self, *tensors: torch.Tensor) -> None:
        """Count tensors that exist already (weights, optimizer state, inputs)."""
        for t in tensors:
            if isinstance(t, torch.Tensor):
                self._see(t)

    def _see(self, t: torch.Tensor) -> None:
        found = self._key(t)
        if found is None:
            return
        st, key, nbytes = found
        if key in self._alive:
            return
        self.clock += 1
        self._alive[key] = len(self._records)
        self._records.append([key, nbytes, self.clock, None, weakref.ref(st, lambda _, k=key: self._free(k)),
                              (self._op, tuple(t.shape), t.dtype), self._label()])
        self.live += nbytes
        self._high()

    def _free(self, key: int) -> None:
        index = self._alive.pop(key, None)
        if index is not None:
            self.clock += 1
            rec = self._records[index]
            rec[3] = self.clock
            self.live -= rec[1]

    def _high(self) -> None:
        if self.live > self.peak:
            self.peak, self.peak_clock = self.live, self.clock
        if self._phase is not None and self.live > self.phase_peak[self._phase]:
            self.phase_peak[self._phase] = self.live

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self._op = str(func)
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self._see(t)
        return out

    @contextmanager
    def phase(self, name: str):
        previous, self._phase = self._phase, name
        self.phase_start[name] = self.live
        self.phase_peak[name] = self.live
        try:
            yield
        finally:
            self._phase = previous

    def classify(self, groups: dict[str, list[torch.Tensor]], rest: str = "activations") -> dict[str, int]:
        """The peak's bytes split into `groups` (name -> tensors, e.g. parameters, gradients,
        optimizer state; looked up by storage) and `rest` for every other storage alive then."""
        owner = self._owners(groups)
        out = dict.fromkeys([*groups, rest], 0)
        for key, nbytes, born, died, _, _, _ in self._records:
            if born <= self.peak_clock and (died is None or died > self.peak_clock):
                out[owner.get(key, rest) if died is None else rest] += nbytes
        return out

    def timeline(self, groups: dict[str, list[torch.Tensor]]) -> Timeline:
        """Bytes alive by category after each allocation (see `Timeline`; groups as in `classify`)."""
        owned = self._owners(groups)
        categories: dict[str, int] = {name: i for i, name in enumerate(groups)}
        events: list[tuple[int, int, int]] = []  # (clock, category, +-bytes)
        for key, nbytes, born, died, _, _, label in self._records:
            name = owned.get(key) if died is None else None
            c = categories.setdefault(name if name is not None else f"act:{label}", len(categories))
            events.append((born, c, nbytes))
            if died is not None:
                events.append((died, c, -nbytes))
        events.sort(key=lambda e: e[0])
        live = [0.0] * len(categories)
        rows = []
        for _, c, delta in events:
            live[c] += delta
            if delta > 0:
                rows.append(list(live))
        with unset_fake_temporarily():  # real tensors, also when called inside a fake mode
            table = torch.tensor(rows, dtype=torch.float64).reshape(len(rows), len(categories))
        return Timeline(tuple(categories), table)

    def _owners(self, groups: dict[str, list[torch.Tensor]]) -> dict[int, str]:
        owner: dict[int, str] = {}
        for name, tensors in groups.items():
            for t in tensors:
                found = self._key(t) if isinstance(t, torch.Tensor) else None
                if found is not None:
                    owner.setdefault(found[1], name)
        return owner

    def rest_by_label(self, groups: dict[str, list[torch.Tensor]]) -> dict[str, int]:
        """The bytes at the peak outside `groups` (what `classify` calls the rest), by label."""
        owned = self._owners(groups)
        out: dict[str, int] = defaultdict(int)
        for key, nbytes, born, died, _, _, label in self._records:
            if born <= self.peak_clock and (died is None or died > self.peak_clock):
                if died is not None or key not in owned:
                    out[label] += nbytes
        return dict(out)

    def largest_at_peak(self, n: int = 10) -> list[tuple[int, str, tuple, torch.dtype]]:
        """The n largest storages alive at the peak: (bytes, the op that made it, shape, dtype)."""
        alive = [(r[1], *r[5]) for r in self._records
                 if r[2] <= self.peak_clock and (r[3] is None or r[3] > self.peak_clock)]
        return sorted(alive, key=lambda x: -x[0])[:n]
