"""Data-parallel training over MPI (mpi4py): N processes, one batch, one model.

Run as ``mpiexec -n N lstm-c train FILE --distributed``. Every process (rank)
holds the whole model and reads its own share of the B streams of the
char-LM batching: rank r reads streams r*B/N .. (r+1)*B/N - 1, through the
text's memory map, so it touches only their pages. After its backward pass
the ranks sum their gradients with an all-reduce (the scheme Horovod made
standard) and divide by N; every rank then takes the same optimizer step from
the same gradient, so the weights never drift apart. A rank's loss is the mean
over its T*B/N characters, so the mean of the N losses and of the N gradients
is the loss and gradient of one process on the whole batch: the runs are the
same up to the order of summation.

The gradients live in one flat buffer, laid out in the order backward
finishes them: the head, then the LSTM's layers from the top down, then the
embedding, then a few extra numbers every rank needs to agree on (the loss,
a stop request, the step's time). ``overlap=False`` sends it in one
``Allreduce``; ``overlap=True`` posts an ``Iallreduce`` of each layer's part
as soon as backward has finished that layer, while it goes on with the layers
below, and waits for all of them at the end.

Dropout masks are drawn for the whole batch on every rank and each keeps its
rows (``LSTM.batch_share``), so they equal one process's masks and the
generators stay in step. Rank 0 alone writes checkpoints and progress; the
carried hidden state is gathered to it first, so a checkpoint holds the
whole batch's and resumes on any N that divides B. An error on one rank
aborts every rank (``MPI.Abort``) rather than leave the others waiting.
"""

import sys
import time

import numpy as np

__all__ = ["Cluster", "FlatGradients", "MPIUnavailable"]


class MPIUnavailable(RuntimeError):
    """--distributed without mpi4py (or without an MPI library for it)."""


class Cluster:
    """The ranks of one data-parallel run: who this process is, and the collective calls."""

    def __init__(self, comm=None):
        try:
            from mpi4py import MPI
        except ImportError as e:  # mpi4py, or the MPI library it loads, is missing
            raise MPIUnavailable("--distributed needs mpi4py and an MPI library: pip install "
                                 "\"lstm-c[mpi]\" (mpi4py with MPICH's wheels), then run "
                                 f"under mpiexec -n N ({e})") from None
        self.MPI = MPI
        self.comm = comm if comm is not None else MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        node = self.comm.Split_type(MPI.COMM_TYPE_SHARED)
        self.local_size = node.Get_size()  # ranks sharing this machine (and its cores)
        node.Free()

    def streams(self, batch_size):
        """This rank's streams (lo, hi) of `batch_size`: an equal share, or a clear error."""
        if batch_size % self.size:
            raise ValueError(f"--distributed: the batch of {batch_size} streams does not split "
                             f"evenly over {self.size} processes; use a batch size that is a "
                             f"multiple of {self.size} (or run on a number of processes that "
                             f"divides {batch_size})")
        per = batch_size // self.size
        return self.rank * per, (self.rank + 1) * per

    def threads(self, threads):
        """Engine threads per rank: the machine's `threads` shared among the ranks on it."""
        return max(1, threads // self.local_size)

    def gather_rows(self, a):
        """The (L, B/N, H) parts of every rank as one (L, B, H) array on rank 0 (None elsewhere)."""
        a = np.ascontiguousarray(a)
        out = np.empty((self.size,) + a.shape, a.dtype) if self.rank == 0 else None
        self.comm.Gather(a, out, root=0)
        if self.rank != 0:
            return None
        return np.ascontiguousarray(np.concatenate(list(out), axis=1))

    def sum(self, values):
        """The element-wise sum over ranks of numbers (int64 or float64; every rank gets it)."""
        a = np.asarray(values)
        a = a.astype(np.int64 if a.dtype.kind in "iub" else np.float64)
        out = np.empty_like(a)
        self.comm.Allreduce(a, out, op=self.MPI.SUM)
        return out

    def abort(self, message):
        """Print `message` and end every rank of the run (MPI_Abort): no rank is left waiting."""
        print(f"lstm-c: rank {self.rank} of {self.size}: {message}; stopping all ranks",
              file=sys.stderr, flush=True)
        self.comm.Abort(1)


class FlatGradients:
    """A char-LM's gradients as views of one flat buffer, summed over the ranks in place.

    Parameters
    ----------
    model : lstm_c.model.CharLM
        Its ``grads`` (and its LSTM's) are rebound to views of the buffer;
        their values are kept.
    cluster : Cluster
    extras : int
        Numbers after the gradients, summed with them (see the module docstring).
    """

    def __init__(self, model, cluster, extras):
        self.model, self.cluster = model, cluster
        lstm = model.lstm
        L = lstm.num_layers
        # Backward finishes the head, then layers L-1 .. 0, then the embedding.
        layer_of = {name: int(name.rsplit("_l", 1)[1].split("_")[0])
                    for name in model.grads if name.startswith("lstm.")}
        groups = [["head.weight", "head.bias"]]
        groups += [[n for n in layer_of if layer_of[n] == k] for k in range(L - 1, -1, -1)]
        groups.append(["embed.weight"])
        assert sorted(sum(groups, [])) == sorted(model.grads), "a gradient left out"
        sizes = [sum(model.grads[n].size for n in g) for g in groups]
        self.n_grad = sum(sizes)
        self.buffer = np.zeros(self.n_grad + extras, model.dtype)
        self.extras = self.buffer[self.n_grad:]
        offset = 0
        for group in groups:
            for name in group:
                g = model.grads[name]
                view = self.buffer[offset:offset + g.size].reshape(g.shape)
                view[...] = g
                model.grads[name] = view
                if name.startswith("lstm."):
                    lstm.grads[name[len("lstm."):]] = view
                offset += g.size
        # Parts sent as each is finished: head and top layer, each layer below, the rest.
        bounds = np.cumsum([0] + sizes)
        self._parts = ([(0, bounds[2])] + [(bounds[i], bounds[i + 1]) for i in range(2, L + 1)]
                       + [(bounds[L + 1], len(self.buffer))])
        self._pending = []
        self.blocked_s = 0.0  # time spent waiting in reduce(): what the sums cost the step

    def reduce(self, overlap=False):
        """Sum the buffer over the ranks, then divide the gradients by N (their mean).

        With overlap, the parts posted during backward (``during_backward``)
        are waited for and the last part is sent now.
        """
        MPI, comm = self.cluster.MPI, self.cluster.comm
        t0 = time.perf_counter()
        if overlap:
            lo, hi = self._parts[-1]
            self._pending.append(comm.Iallreduce(MPI.IN_PLACE, self.buffer[lo:hi], op=MPI.SUM))
            MPI.Request.Waitall(self._pending)
            self._pending = []
        else:
            comm.Allreduce(MPI.IN_PLACE, self.buffer, op=MPI.SUM)
        self.blocked_s += time.perf_counter() - t0
        self.buffer[:self.n_grad] *= self.model.dtype.type(1.0 / self.cluster.size)

    def during_backward(self, on):
        """Post each LSTM layer's part as backward finishes it (on), or send all at the end."""
        self.model.lstm._layer_done = self._post if on else None

    def _post(self, k):
        # Part 0 holds the head and the top layer (k = L-1); part j the layer L-1-j.
        MPI, comm = self.cluster.MPI, self.cluster.comm
        lo, hi = self._parts[self.model.lstm.num_layers - 1 - k]
        self._pending.append(comm.Iallreduce(MPI.IN_PLACE, self.buffer[lo:hi], op=MPI.SUM))

