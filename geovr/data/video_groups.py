"""`VideoGroupSampler`: an epoch of QA records packed by video, in steps that count questions.

Records about the same media with the same text before it (`prefix_signature`: the turns and
text that precede the media placeholder) form one *video group*: their tokenized prefixes are the
same tokens, so up to K of them can share one sequence (`geovr.data.packing`). The epoch's plan
depends only on (seed, epoch, the groups, K, the global batch, the micro-batch, the ranks), so
every rank computes the same one:

1. the groups are shuffled, and each group's records; each group is cut into chunks of
   c = min(K, G) questions (G: the global batch) and one shorter remainder;
2. steps of exactly G questions: G // c whole chunks each (shuffled, so that a step's chunks come
   from different videos: the geometric losses see G // c videos a step), the room left over and then further
   steps filled with the remainders in turn (a remainder split only where a step is full); the
   last step is completed with the epoch's first questions (as torch's DistributedSampler pads);
   the steps are shuffled. What a step holds depends on neither the ranks nor the micro-batch;
3. each step's sequences go to the W ranks, exactly G / W questions each: longest first, each to
   the rank with the fewest sequences that holds it whole (a sequence no rank holds whole fills
   the roomiest rank, and the rest goes on), so the ranks' sequence counts stay level;
4. every rank runs the step's largest micro-batch count M (sequences / micro_batch, rounded
   up): a rank with fewer splits its longest sequences until it has M micro-batches.

Cutting the epoch's question stream into steps and ranks as it comes would split a sequence at
nearly every rank's share (a video's questions rarely end where a share does); whole chunks fill
the shares exactly, and only the remainders are split.

A video's questions may thus be split across sequences, ranks and steps; every question of the
epoch is trained once (the padding aside). The sampler is a batch sampler: it yields this rank's
micro-batches, each a list of keys `(record indices, epoch, position)`, position the sequence's
index in this rank's epoch, so a run resumes after the last consumed sequence exactly as
`ResumableSampler` does; with another number of ranks it resumes at the step boundary.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import torch

from .datasets.records import IMAGE_TAG, VIDEO_PLACEHOLDER, VideoQA


def prefix_signature(rec: VideoQA) -> tuple:
    """What a record's shared prefix depends on besides its media: the turns before the one that
    holds the placeholder, and that turn's text before it."""
    for j, t in enumerate(rec.turns):
        for tag in (VIDEO_PLACEHOLDER, IMAGE_TAG):
            if tag in t.text:
                return (rec.kind, tuple((u.role, u.text) for u in rec.turns[:j]), t.role, t.text.split(tag, 1)[0])
    return (rec.kind, tuple((u.role, u.text) for u in rec.turns), None, None)


def video_groups(records: Sequence[VideoQA]) -> list[list[int]]:
    """Record indices grouped by (media, prefix signature), in order of first appearance."""
    groups: dict[tuple, list[int]] = {}
    for i, rec in enumerate(records):
        groups.setdefault((rec.media, prefix_signature(rec)), []).append(i)
    return list(groups.values())


@dataclass
class StepPlan:
    """One step of an epoch: per rank, its micro-batches, each a list of sequences (record indices)."""

    ranks: list[list[list[tuple[int, ...]]]]

    @property
    def micro_batches(self) -> int:
        return len(self.ranks[0])


def _chunks(groups: list[list[int]], c: int) -> tuple[list[list[int]], list[list[int]]]:
    """(whole chunks of c records, the remainders shorter than c), each group's in its order."""
    whole, rest = [], []
    for recs in groups:
        n = len(recs) // c * c
        whole += [recs[i:i + c] for i in range(0, n, c)]
        if n < len(recs):
            rest.append(recs[n:])
    return whole, rest


def _next_fit(seqs: list[list[int]], size: int, bins: list[list[list[int]]], room: list[int]) -> None:
    """Put `seqs` in turn into the first bin with room (then new bins of `size`), splitting a
    sequence only where a bin is full. bins and room (each bin's free questions) are updated."""
    i = next((j for j, r in enumerate(room) if r), len(room))
    for seq in seqs:
        while seq:
            if i == len(bins):
                bins.append([])
                room.append(size)
            take = min(len(seq), room[i])
            bins[i].append(seq[:take])
            room[i] -= take
            seq = seq[take:]
            while i < len(bins) and not room[i]:
                i += 1


def _to_ranks(step: list[list[int]], world: int, per_rank: int) -> list[list[list[int]]]:
    """A step's sequences -> per rank, exactly per_rank questions. Longest first, each into the
    rank with the fewest sequences that holds it whole (then the tightest fit), so that the ranks'
    sequence counts, and with them the micro-batches every rank must run, stay level; a sequence
    no rank can hold whole fills the roomiest rank and goes on (ties: the lowest rank)."""
    ranks: list[list[list[int]]] = [[] for _ in range(world)]
    room = [per_rank] * world
    for seq in sorted(step, key=len, reverse=True):  # stable: equal lengths keep the step's order
        while seq:
            fits = [r for r in range(world) if room[r] >= len(seq)]
            r = min(fits, key=lambda i: (len(ranks[i]), room[i], i)) if fits else \
                max(range(world), key=lambda i: (room[i], -i))
            part, seq = seq[:room[r]], seq[room[r]:]
            ranks[r].append(part)
            room[r] -= len(part)
    return ranks


def _split_to(seqs: list[list[int]], count: int) -> list[list[int]]:
    """Split the longest sequences in halves (in place in the order) until there are `count`."""
    seqs = [list(s) for s in seqs]
    while len(seqs) < count:
        j = max(range(len(seqs)), key=lambda i: len(seqs[i]))
        s = seqs[j]
        if len(s) < 2:
            raise ValueError(f"cannot make {count} sequences of {sum(map(len, seqs))} questions")
        half = (len(s) + 1) // 2
        seqs[j:j + 1] = [s[:half], s[half:]]
    return seqs


class VideoGroupSampler:
    """groups: record indices per video group (`video_groups`); k: questions per sequence at most;
    global_batch: questions per optimizer step over all ranks (a multiple of world_size);
    micro_batch: sequences per micro-batch. See the module docstring."""

    def __init__(self, groups: list[list[int]], k: int, global_batch: int, micro_batch: int = 1, seed: int = 0,
                 shuffle: bool = True, rank: int = 0, world_size: int = 1):
        n = sum(len(g) for g in groups)
        if n < 1:
            raise ValueError("the dataset is empty: check the annotation files and media root")
        if k < 1 or micro_batch < 1:
            raise ValueError(f"k and micro_batch must be >= 1, got {k}, {micro_batch}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside world_size {world_size}")
        if global_batch < world_size or global_batch % world_size:
            raise ValueError(f"global_batch {global_batch} must be a multiple of the {world_size} data-parallel ranks")
        self.groups, self.k, self.global_batch, self.micro_batch = [list(g) for g in groups], k, global_batch, micro_batch
        self.seed, self.shuffle, self.rank, self.world_size = seed, shuffle, rank, world_size
        self.n = n
        self.epoch, self.start = 0, 0
        self._plans: dict[tuple[int, int], list[StepPlan]] = {}

    # ------------------------------------------------------------------ the plan
    @property
    def steps_per_epoch(self) -> int:
        return -(-self.n // self.global_batch)

    def steps(self, epoch: int) -> list[list[list[int]]]:
        """The epoch's steps, each a list of sequences (record indices) of exactly G questions in
        all (see the module); the same for any number of ranks."""
        g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        order = torch.randperm(len(self.groups), generator=g).tolist() if self.shuffle else range(len(self.groups))
        groups = []
        for gi in order:
            recs = self.groups[gi]
            if self.shuffle:
                recs = [recs[i] for i in torch.randperm(len(recs), generator=g).tolist()]
            groups.append(recs)
        c = min(self.k, self.global_batch)
        whole, rest = _chunks(groups, c)
        if self.shuffle:  # a step's whole chunks from as many videos as it has chunks, not a video's run of them
            whole = [whole[i] for i in torch.randperm(len(whole), generator=g).tolist()]
        per = self.global_batch // c
        full = len(whole) // per
        steps = [whole[i * per:(i + 1) * per] for i in range(full)]
        room = [self.global_batch - per * c] * full
        _next_fit(whole[full * per:] + rest, self.global_batch, steps, room)
        while room and room[-1]:  # the last step completed with the epoch's first questions
            need, first = room[-1], []
            for recs in groups:
                first.append(recs[:need])
                need -= len(first[-1])
                if not need:
                    break
            _next_fit(sum(_chunks(first, c), []), self.global_batch, steps, room)
        if self.shuffle:
            steps = [steps[i] for i in torch.randperm(len(steps), generator=g).tolist()]
        return steps

    def plan(self, epoch: int, world_size: int | None = None) -> list[StepPlan]:
        """Every step of `epoch` for `world_size` ranks (default this run's), cached."""
        world = world_size or self.world_size
        key = (epoch, world)
        if key not in self._plans:
            if len(self._plans) > 2:
                self._plans.clear()
            self._plans[key] = self._make_plan(epoch, world)
        return self._plans[key]

    def _make_plan(self, epoch: int, world: int) -> list[StepPlan]:
        mb, q = self.micro_batch, self.global_batch // world
        steps = []
        for step in self.steps(epoch):
            share = _to_ranks(step, world, q)
            m = max(-(-len(s) // mb) for s in share)
            share = [_split_to(s, (m - 1) * mb + 1) if -(-len(s) // mb) < m else s for s in share]
            steps.append(StepPlan([[[tuple(x) for x in s[i * mb:(i + 1) * mb]] for i in range(m)] for s in share]))
        return steps

    def micro_batches(self, epoch: int, step: int) -> int:
        """Micro-batches every rank runs in step `step` of `epoch`."""
        return self.plan(epoch)[step].micro_batches

    def rank_sequences(self, epoch: int, rank: int | None = None, world_size: int | None = None) -> list[list[tuple]]:
        """This rank's micro-batches of the epoch in order (each a list of sequences)."""
        r = self.rank if rank is None else rank
        return [mb for step in self.plan(epoch, world_size) for mb in step.ranks[r]]

    # ------------------------------------------------------------------ iteration
    def __iter__(self) -> Iterator[list[tuple[tuple[int, ...], int, int]]]:
        epoch, start = self.epoch, self.start
        pos = 0
        for mb in self.rank_sequences(epoch):
            keys = []
            for seq in mb:
                if pos >= start:
                    keys.append((seq, epoch, pos))
                pos += 1
            if keys:
                yield keys

    def __len__(self) -> int:
        pos, count = 0, 0
        for mb in self.rank_sequences(self.epoch):
            pos += len(mb)
            count += pos > self.start
        return count

    def set_epoch(self, epoch: int) -> None:
        self.epoch, self.start = epoch, 0

    # ------------------------------------------------------------------ resume
    def state_dict(self, position: tuple[int, int] | None = None,
                   ranks: list[tuple[int, int]] | None = None) -> dict:
        """As `ResumableSampler.state_dict`, with what the grouped plan depends on."""
        epoch, index = position if position is not None else (self.epoch, self.start)
        out = {"epoch": epoch, "index": index, "seed": self.seed, "n": self.n, "world_size": self.world_size,
               "group_by_video": self.k, "global_batch": self.global_batch, "micro_batch": self.micro_batch}
        if ranks is not None:
            out["ranks"] = [list(p) for p in ranks]
        return out

    def load_state_dict(self, state: dict) -> None:
        """Resume where `state` says: each rank where it stopped (same ranks and plan), or at the
        first step boundary every saved rank had passed (another number of ranks)."""
        if "group_by_video" not in state:
            raise ValueError("cannot resume: the checkpoint was written without data.group_by_video; resume it "
                             "with the same setting (its sample order differs)")
        for key, mine in (("seed", self.seed), ("n", self.n), ("group_by_video", self.k),
                          ("global_batch", self.global_batch)):
            if state[key] != mine:
                raise ValueError(f"cannot resume: the checkpoint's sampler {key}={state[key]} differs from this "
                                 f"run's {mine} (the same data, seed, grouping and global batch are needed)")
        saved_world = int(state.get("world_size", self.world_size))
        ranks = [tuple(p) for p in state.get("ranks", [])] or [(state["epoch"], state["index"])] * saved_world
        if saved_world == self.world_size and state.get("micro_batch") == self.micro_batch:
            self.epoch, self.start = (int(v) for v in ranks[self.rank])
            return
        self.epoch, self.start = self.resharded_start(ranks, int(state.get("micro_batch", self.micro_batch)))

    def resharded_start(self, ranks: list[tuple[int, int]], saved_micro_batch: int) -> tuple[int, int]:
        """(epoch, sequence index) for this rank after a checkpoint of len(ranks) ranks at their
        (epoch, index): the start of the first step no saved rank had begun is not needed; the
        first step some rank had not finished is trained again from its beginning."""
        epoch = min(e for e, _ in ranks)
        saved = VideoGroupSampler(self.groups, self.k, self.global_batch, saved_micro_batch, self.seed, self.shuffle,
                                  0, len(ranks))
        plan = saved.plan(epoch)
        done = len(plan)
        for r, (e, index) in enumerate(ranks):
            if e > epoch:
                continue
            seen = 0
            for j, step in enumerate(plan):  # steps whose every sequence this rank consumed
                seen += sum(len(mb) for mb in step.ranks[r])
                if seen > index:
                    done = min(done, j)
                    break
        if done >= len(plan):
            return epoch + 1, 0
        mine = self.plan(epoch)
        return epoch, sum(len(mb) for step in mine[:done] for mb in step.ranks[self.rank])
