"""Which process of how many this is, under ``accelerate launch`` or ``torchrun``.

``restorer restore`` shards its input across the processes of a launch (one per GPU, or
several on a CPU machine, on one node or many). The launchers describe the process in the
environment: ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK`` and ``LOCAL_WORLD_SIZE`` (or MPI's
equivalents under ``mpirun``), plus ``MASTER_ADDR`` and ``MASTER_PORT`` for the rendezvous.
A plain run has none of them and is one process: nothing here then imports
``torch.distributed``.

The processes only need to wait for each other once (before the main process merges the
shards), so the process group is gloo, on the CPU, whatever device the model runs on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import timedelta

# The main process waits at the barrier for the slowest process, which may have hours of work
# left (after a --resume, say). A process that dies breaks the barrier at once, and the
# launcher then stops the others, so a long timeout costs nothing.
BARRIER_TIMEOUT = timedelta(days=7)


class LaunchError(Exception):
    """The environment describes a launch that cannot work: one line for the user."""


def _no_barrier() -> None:
    pass


@dataclass(frozen=True)
class World:
    """This process (``rank``) among ``size`` processes; ``local_*`` count the ones on this node."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1
    barrier: Callable[[], None] = field(default=_no_barrier, repr=False, compare=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> World:
        env = os.environ if env is None else env
        size = _int_var(env, _SIZE, 1)
        if size <= 1:
            return cls()
        rank = _int_var(env, _RANK, None)
        local_rank = _int_var(env, _LOCAL_RANK, rank)
        local_size = _int_var(env, _LOCAL_SIZE, size)
        if not 0 <= rank < size:
            raise LaunchError(f"RANK={rank} is not between 0 and WORLD_SIZE-1={size - 1}")
        return cls(rank, size, local_rank, max(1, local_size))

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def device(self, device: str) -> str:
        """The device this process runs on: ``auto`` and ``cuda`` become ``cuda:LOCAL_RANK``
        when there are GPUs (``auto`` is the CPU otherwise); an explicit ``cuda:N`` is kept."""
        if not self.distributed or device not in ("auto", "cuda"):
            return device
        import torch

        if not torch.cuda.is_available():
            return "cpu" if device == "auto" else device  # "cuda" fails with a clear error later
        return f"cuda:{self.local_rank % torch.cuda.device_count()}"

    def threads(self, threads: int | None) -> int | None:
        """CPU threads per process: the ones asked for, else this node's cores shared out
        (torch's default, one thread per core in every process, oversubscribes the CPU)."""
        if threads is not None or not self.distributed:
            return threads
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            cores = os.cpu_count() or 1
        return max(1, cores // self.local_size)


# torchrun's variables first, then MPI's (accelerate launch --cpu under mpirun), as accelerate reads them
_SIZE = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
_RANK = ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")
_LOCAL_RANK = ("LOCAL_RANK", "MPI_LOCALRANKID", "OMPI_COMM_WORLD_LOCAL_RANK", "MV2_COMM_WORLD_LOCAL_RANK")
_LOCAL_SIZE = (
    "LOCAL_WORLD_SIZE",
    "MPI_LOCALNRANKS",
    "OMPI_COMM_WORLD_LOCAL_SIZE",
    "MV2_COMM_WORLD_LOCAL_SIZE",
)


def _int_var(env: Mapping[str, str], names: tuple[str, ...], default: int | None) -> int:
    """The first of ``names`` that is set, as a number."""
    name = next((n for n in names if env.get(n)), None)
    if name is None:
        if default is None:
            raise LaunchError(
                f"WORLD_SIZE is set but {names[0]} is not; start the processes with accelerate launch or torchrun"
            )
        return default
    try:
        return int(env[name])
    except ValueError:
        raise LaunchError(f"{name}={env[name]!r} is not a whole number") from None


@contextmanager
def connected(world: World) -> Iterator[World]:
    """``world`` with a working ``barrier`` for the time of the block: a gloo process group when
    there are several processes (torch.distributed's own, when one is already set up)."""
    if not world.distributed:
        yield world
        return
    import torch.distributed as dist

    owned = not dist.is_initialized()
    if owned:
        missing = [v for v in ("MASTER_ADDR", "MASTER_PORT") if not os.environ.get(v)]
        if missing:
            raise LaunchError(
                f"WORLD_SIZE={world.size} but {' and '.join(missing)} not set; "
                "start the processes with accelerate launch or torchrun"
            )
        dist.init_process_group("gloo", rank=world.rank, world_size=world.size, timeout=BARRIER_TIMEOUT)
    elif dist.get_world_size() != world.size:
        raise LaunchError(
            f"the process group has {dist.get_world_size()} processes, WORLD_SIZE says {world.size}"
        )
    try:
        yield replace(world, barrier=dist.barrier)
    finally:
        if owned:
            dist.destroy_process_group()
