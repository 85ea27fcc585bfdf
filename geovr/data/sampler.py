"""`ResumableSampler`: a seeded shuffle per epoch, sharded over data-parallel ranks, that can
resume mid-epoch from a checkpointed (epoch, index) without replaying or losing a sample.

It yields `(dataset_index, epoch, position)` keys; `VideoQADataset` accepts them and stamps each
sample with its (epoch, position), so the training loop knows exactly how far it has consumed
even with DataLoader workers prefetching ahead: checkpoint `position_after(batch)`.
"""
from __future__ import annotations

from typing import Iterator

import torch
from torch.utils.data import Sampler


class ResumableSampler(Sampler):
    """n: dataset length. Each rank gets ceil(n / world_size) keys per epoch (the last ones wrap
    around to keep ranks in step). The order depends only on (seed, epoch) (and the lengths).

    Length grouping (lengths given, group > 0): each rank's shuffled order is cut into windows of
    `group` x `micro_batch` samples and each window sorted by length, longest first, so that a
    micro-batch holds samples of similar length and pads little (as LLaVA-style trainers group by
    modality length); the windows keep the shuffle's randomness across the epoch."""

    def __init__(self, n: int, seed: int = 0, shuffle: bool = True, rank: int = 0, world_size: int = 1,
                 lengths: list[int] | None = None, micro_batch: int = 1, group: int = 0):
        if n < 1:
            raise ValueError(f"the dataset is empty (n={n}): check the annotation files and media root")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        if lengths is not None and len(lengths) != n:
            raise ValueError(f"lengths: {len(lengths)} entries for a dataset of {n}")
        if group < 0 or micro_batch < 1:
            raise ValueError(f"group must be >= 0 and micro_batch >= 1, got {group}, {micro_batch}")
        self.n, self.seed, self.shuffle, self.rank, self.world_size = n, seed, shuffle, rank, world_size
        self.lengths, self.window = lengths, (group * micro_batch if lengths is not None else 0)
        self.epoch = 0
        self.start = 0

    def order(self, epoch: int) -> list[int]:
        """This rank's dataset indices for `epoch`, in order."""
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
            perm = torch.randperm(self.n, generator=g).tolist()
        else:
            perm = list(range(self.n))
        per_rank = -(-self.n // self.world_size)
        perm = perm + perm[: per_rank * self.world_size - self.n]
        mine = perm[self.rank::self.world_size]
        if not self.window:
            return mine
        out = []
        for i in range(0, len(mine), self.window):  # a stable sort: equal lengths keep the shuffle's order
            out += sorted(mine[i:i + self.window], key=lambda k: -self.lengths[k])
        return out

    def __iter__(self) -> Iterator[tuple[int, int, int]]:
        epoch, start = self.epoch, self.start
        order = self.order(epoch)
        for pos in range(start, len(order)):
            yield order[pos], epoch, pos

    def __len__(self) -> int:
        return len(self.order(self.epoch)) - self.start

    def set_epoch(self, epoch: int) -> None:
        """Start `epoch` from its beginning (call before each epoch, as with DistributedSampler)."""
        self.epoch, self.start = epoch, 0

    def state_dict(self, position: tuple[int, int] | None = None,
                   ranks: list[tuple[int, int]] | None = None) -> dict:
        """Where to resume: {"epoch", "index"} of this rank (position: `position_after(last consumed
        batch)`), "ranks": every rank's (epoch, index) when given (ranks may differ: a rank reads on
        past a micro-batch of only bad items), and what the order depends on."""
        epoch, index = position if position is not None else (self.epoch, self.start)
        out = {"epoch": epoch, "index": index, "seed": self.seed, "n": self.n, "world_size": self.world_size,
               "window": self.window}
        if ranks is not None:
            out["ranks"] = [list(p) for p in ranks]
        return out

    def load_state_dict(self, state: dict) -> None:
        """Resume where `state` says. Written by as many ranks as this run has: each rank continues
        exactly where it stopped. By another number of ranks: see `resharded_start`."""
        for key in ("seed", "n"):
            if key in state and state[key] != getattr(self, key):
                raise ValueError(f"cannot resume: the checkpoint's sampler {key}={state[key]} differs from "
                                 f"this run's {getattr(self, key)} (the same data and seed are needed)")
        saved_world = int(state.get("world_size", self.world_size))
        ranks = [tuple(p) for p in state.get("ranks", [])] or [(state["epoch"], state["index"])] * saved_world
        if saved_world == self.world_size and state.get("window", self.window) == self.window:
            self.epoch, self.start = (int(v) for v in ranks[self.rank])
            return
        self.epoch, self.start = self.resharded_start(ranks, int(state.get("window", 0)))

    def resharded_start(self, ranks: list[tuple[int, int]], saved_window: int) -> tuple[int, int]:
        """(epoch, index) for this rank when a checkpoint of len(ranks) ranks (each at its
        (epoch, index); `saved_window`: their length-grouping window, 0 for none) resumes here.

        Rank r of W reads perm[r::W] (in windows sorted by length), so the samples every rank had
        read are a prefix of the epoch's permutation: min over ranks of the complete windows read,
        times W. The new ranks continue after the longest such prefix whose length is a multiple
        of their own window x world size; samples some ranks had read past it are read again
        (none when the ranks were level and the windows divide evenly, as at the same global
        batch without length grouping)."""
        epoch = min(e for e, _ in ranks)
        old_unit = max(1, saved_window)
        per_rank = -(-self.n // len(ranks))
        read = min(min(i, per_rank) // old_unit * old_unit if e == epoch else per_rank for e, i in ranks)
        done = read * len(ranks)
        if done >= self.n:
            return epoch + 1, 0
        unit = max(1, self.window) * self.world_size
        return epoch, done // unit * unit // self.world_size


def position_after(positions: list[tuple[int, int]]) -> tuple[int, int]:
    """The resume point after a batch whose samples carry `positions` [(epoch, position)...]."""
    epoch, pos = max(positions)
    return epoch, pos + 1


def padding_fraction(attention_mask: torch.Tensor) -> float:
    """The share of a collated micro-batch's token slots that are padding (attention_mask [B, L])."""
    return 1.0 - float(attention_mask.sum()) / max(1, attention_mask.numel())
