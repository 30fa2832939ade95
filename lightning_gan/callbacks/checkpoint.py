"""Checkpoints that survive a crash while they are written, and resumed runs that draw the same random numbers.

**Atomic saves.** Lightning 2.6 writes a checkpoint through ``lightning.fabric.utilities.cloud_io._atomic_save``:
``torch.save`` into memory, then, inside an fsspec transaction, into a temporary file made by
``tempfile.mkstemp()`` in the *system* temporary folder, which the commit moves onto the target with
``shutil.move``. That is an atomic ``rename`` only when the temporary folder and the checkpoint folder are on the
same filesystem. Otherwise (``/tmp`` on tmpfs or a local disk, checkpoints on a network or another disk) the move
copies into the target path, truncating the previous ``last.ckpt`` first: a crash, a full disk or a killed job
during the copy leaves a truncated ``last.ckpt`` and nothing to resume from. Nothing is ``fsync``-ed either.
:class:`AtomicModelCheckpoint` writes next to the target and ``os.replace``-s it.

**``last.ckpt`` after every epoch.** Since Lightning 2.6 ``save_last=True`` writes ``last.ckpt`` only when a top-k
checkpoint was written at the same step: with ``monitor`` and ``save_top_k=1`` an epoch that does not improve the
monitored metric leaves ``last.ckpt`` at the best epoch, and resuming from it silently loses every epoch since.
:class:`AtomicModelCheckpoint` writes it at the end of every epoch again (the documented meaning: "the latest").

**RNG states.** Lightning's checkpoint holds no random-number-generator state. :class:`GlobalRNGState` adds it.
"""

from __future__ import annotations

import os
import random
import shutil
from typing import Any
from weakref import proxy

import numpy as np
import torch
from lightning.pytorch import Callback, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_warn
from typing_extensions import override

__all__ = ["AtomicModelCheckpoint", "GlobalRNGState", "PARTIAL_SUFFIX"]

PARTIAL_SUFFIX = ".partial"  # "last.ckpt.partial": not a ".ckpt", so ckpt_path="last" and top-k never pick it up


def _fsync(path: str) -> None:
    """Flush a file (or a folder's entries) to disk; a no-op where the OS cannot open folders (Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class AtomicModelCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` whose files are replaced atomically: a failed or killed save leaves the previous one intact.

    Each checkpoint (``last.ckpt`` and the top-k files alike) is written by ``trainer.save_checkpoint`` to
    ``<name>.partial`` in the same folder, flushed to disk, and moved onto ``<name>`` with ``os.replace``, which is
    atomic within one filesystem; then the folder is flushed. A crash leaves at most a stale ``.partial`` file, which
    the next save overwrites. Every argument is ``ModelCheckpoint``'s.

    With ``save_last=True`` (or ``"link"``), ``last.ckpt`` holds the latest epoch whether or not the monitored
    metric improved (Lightning 2.6 updates it only together with a top-k save).

    Sharded strategies that save a folder per checkpoint get the folder swapped in after it is complete (the old
    one removed first: not atomic, but never half-written).

    Example:
        >>> from lightning.pytorch import Trainer
        >>> checkpoint = AtomicModelCheckpoint(save_last=True)
        >>> trainer = Trainer(callbacks=[checkpoint], logger=False, enable_progress_bar=False)
        >>> trainer.checkpoint_callback is checkpoint
        True
    """

    @override
    def on_train_epoch_end(self, trainer: Trainer, pl_module: Any) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if not self._should_skip_saving_checkpoint(trainer) and self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_stale(trainer)

    @override
    def on_validation_end(self, trainer: Trainer, pl_module: Any) -> None:
        super().on_validation_end(trainer, pl_module)
        if not self._should_skip_saving_checkpoint(trainer) and not self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_stale(trainer)

    def _save_last_if_stale(self, trainer: Trainer) -> None:
        """Write ``last.ckpt`` unless this step's state was just saved (by a top-k save and its ``last`` copy)."""
        if self.save_last and self._last_global_step_saved != trainer.global_step:
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    @override
    def _save_checkpoint(self, trainer: Trainer, filepath: str) -> None:
        partial = filepath + PARTIAL_SUFFIX
        trainer.save_checkpoint(partial, self.save_weights_only)  # every rank: sharded strategies save together
        if trainer.is_global_zero:
            if os.path.isdir(partial):
                shutil.rmtree(filepath, ignore_errors=True)
            else:
                _fsync(partial)
            os.replace(partial, filepath)
            _fsync(os.path.dirname(filepath) or ".")
        trainer.strategy.barrier("AtomicModelCheckpoint")
        # the rest of lightning 2.6's ModelCheckpoint._save_checkpoint, once the file has its final name
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.after_save_checkpoint(proxy(self))


class GlobalRNGState(Callback):
    """Carry the global RNG states (torch CPU and CUDA, numpy, ``random``) through checkpoints.

    Why: a run resumed in a new process otherwise starts from wherever ``seed_everything`` put the RNGs, not from
    where the interrupted run was, so its noise (z, the discriminator's Gaussian noise, DiffAugment) and its data
    order (a shuffling ``DataLoader`` seeds itself from torch's global RNG at every epoch, and Lightning's
    ``max_size_cycle`` re-shuffles the small labelled set each time it runs out) differ from the uninterrupted run's.
    With this callback a run resumed from a checkpoint written at the end of an epoch (``ModelCheckpoint``'s default)
    continues exactly as the uninterrupted run would have (``tests/test_resume.py``).

    The states are put back in :meth:`load_state_dict`, which Lightning calls before the first epoch's data
    iterators are made (``fit_loop.setup_data``); the sanity check in between runs inside ``isolate_rng`` (and is
    skipped on restart). Limits: a checkpoint written in the middle of an epoch resumes with that epoch's data from
    its start (plain DataLoaders cannot be fast-forwarded). Under DDP every rank's states are gathered into
    ``"per_rank"`` (Lightning builds the checkpoint on every rank, and rank 0 writes it), and each rank gets its own
    back when the world size is the same; otherwise every rank gets rank 0's (with a warning) and the models
    reseed the other ranks (:meth:`~lightning_gan.models.base.AdversarialModule.decorrelate_ranks`). The state holds
    only tensors, ints, floats and strings, so checkpoints still load with ``torch.load(weights_only=True)``.

    Example:
        >>> rng = GlobalRNGState()
        >>> state = rng.state_dict()
        >>> a = torch.rand(2)
        >>> rng.load_state_dict(state)
        >>> torch.equal(torch.rand(2), a)
        True
    """

    @override
    def state_dict(self) -> dict[str, Any]:
        state = self._local_state()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered: list[Any] = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(gathered, state)  # every rank calls state_dict when saving
            state = {**gathered[0], "per_rank": gathered}
        return state

    @staticmethod
    def _local_state() -> dict[str, Any]:
        kind, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
        version, internal, gauss_next = random.getstate()
        return {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": {
                "kind": str(kind),
                "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                "pos": int(pos),
                "has_gauss": int(has_gauss),
                "cached_gaussian": float(cached_gaussian),
            },
            "python": {"version": int(version), "internal": list(internal), "gauss_next": gauss_next},
        }

    @override
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        per_rank = state_dict.get("per_rank")
        if per_rank and torch.distributed.is_available() and torch.distributed.is_initialized():
            rank, world_size = torch.distributed.get_rank(), torch.distributed.get_world_size()
            if len(per_rank) == world_size:
                state_dict = per_rank[rank]
            else:
                rank_zero_warn(
                    f"GlobalRNGState: the checkpoint has RNG states of {len(per_rank)} ranks, this run has "
                    f"{world_size}; every rank starts from rank 0's (the models then reseed the others)"
                )
        torch.set_rng_state(state_dict["torch"])
        cuda = state_dict.get("cuda") or []
        if cuda and torch.cuda.is_available():
            if len(cuda) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all(cuda)
            else:
                rank_zero_warn(
                    f"GlobalRNGState: the checkpoint has {len(cuda)} CUDA RNG states for "
                    f"{torch.cuda.device_count()} devices; CUDA RNGs are not restored"
                )
        n = state_dict["numpy"]
        keys = n["keys"].numpy().astype(np.uint32)
        np.random.set_state((n["kind"], keys, n["pos"], n["has_gauss"], n["cached_gaussian"]))
        p = state_dict["python"]
        random.setstate((p["version"], tuple(p["internal"]), p["gauss_next"]))
