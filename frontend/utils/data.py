"""Datasets, samplers and the ``DataLoader``, mirroring ``torch.utils.data`` (single process).

The pieces and how they fit, as in PyTorch:

* a ``Dataset`` maps an index to one sample (``dataset[i]``) and knows its ``len``;
* a ``Sampler`` yields indices into it (in order, or shuffled);
* a ``BatchSampler`` groups those indices into lists of ``batch_size``;
* ``DataLoader`` fetches the samples of each index list and merges them with
  ``collate_fn`` (by default :func:`default_collate`, which stacks tensors
  along a new first dimension).

Everything runs in the calling process: ``num_workers``, ``pin_memory`` and
the other multiprocessing options are accepted so PyTorch code runs
unchanged, and the batches are the same as PyTorch's with ``num_workers=0``.

Randomness (``shuffle=True``, ``RandomSampler``, ``random_split``):

* with ``generator=g``: ``g`` is a ``frontend.Generator`` (or any object
  keeping a numpy ``Generator`` in ``g._rng``, as it does) or a numpy
  ``Generator``/``RandomState``; it is drawn from directly, so a seeded
  generator gives a reproducible order; anything else is a ``TypeError``;
* without: ``frontend.randperm(n)``, which draws from Kiln's global RNG, so
  ``frontend.manual_seed(s)`` makes the shuffle reproducible, as
  ``torch.manual_seed`` does in PyTorch; if the core has no ``randperm``, a
  module-level ``numpy.random.default_rng()`` (not reproducible).

Each pass over a shuffled loader draws a new permutation, so epochs differ.
The orders are not the same numbers as PyTorch's for the same seed.
"""

from __future__ import annotations

import collections.abc
import copy
import itertools
import math
from typing import Generic, Iterator, Sequence, TypeVar

import numpy as np

import frontend  # only attributes are looked up, at call time: frontend/__init__ may still be running

__all__ = [
    "Dataset",
    "TensorDataset",
    "Subset",
    "random_split",
    "Sampler",
    "SequentialSampler",
    "RandomSampler",
    "BatchSampler",
    "DataLoader",
    "default_collate",
    "default_convert",
]

T_co = TypeVar("T_co", covariant=True)


# --------------------------------------------------------------------------- randomness


_fallback_rng = None


def _numpy_rng(generator):
    """The numpy random state behind ``generator``, or None if it has none we can use."""
    for candidate in (generator, getattr(generator, "_rng", None)):
        if isinstance(candidate, (np.random.Generator, np.random.RandomState)):
            return candidate
    return None


def _global_numpy_rng():
    global _fallback_rng
    if _fallback_rng is None:
        _fallback_rng = np.random.default_rng()
    return _fallback_rng


def _as_index_list(values) -> list[int]:
    """A tensor / array / list of indices as a list of Python ints (what samplers yield)."""
    if hasattr(values, "numpy"):
        values = values.numpy()
    return [int(i) for i in np.asarray(values).reshape(-1)]


def _rng_for(generator):
    """The numpy random state to draw from; None means "use frontend's global RNG"."""
    if generator is None:
        return None
    rng = _numpy_rng(generator)
    if rng is None:
        raise TypeError(
            f"generator of type {type(generator).__name__} is not supported: pass a frontend.Generator, "
            "a numpy Generator, or an object whose _rng attribute is one"
        )
    return rng


def _randperm(n: int, generator=None) -> list[int]:
    """A random permutation of ``range(n)``; see the module docstring for where randomness comes from."""
    if n == 0:
        return []
    rng = _rng_for(generator)
    if rng is None:
        randperm = getattr(frontend, "randperm", None)
        if randperm is not None:
            return _as_index_list(randperm(n))
        rng = _global_numpy_rng()
    return _as_index_list(rng.permutation(n))


def _randint(high: int, size: int, generator=None) -> list[int]:
    """``size`` random ints in ``[0, high)``, for sampling with replacement."""
    rng = _rng_for(generator)
    if rng is None:
        randint = getattr(frontend, "randint", None)
        if randint is not None:
            return _as_index_list(randint(0, high, (size,)))
        rng = _global_numpy_rng()
    if isinstance(rng, np.random.Generator):
        return _as_index_list(rng.integers(0, high, size))
    return _as_index_list(rng.randint(0, high, size))


# --------------------------------------------------------------------------- datasets


class Dataset(Generic[T_co]):
    """A map-style dataset: subclasses implement ``__getitem__(index)`` and usually ``__len__``.

    ``DataLoader`` needs ``__len__`` for its default samplers and for ``len(loader)``.
    """

    def __getitem__(self, index) -> T_co:
        raise NotImplementedError("Subclasses of Dataset should implement __getitem__.")


class TensorDataset(Dataset):
    """Samples are rows of the given tensors: ``dataset[i] == (t[i] for t in tensors)``.

    All tensors must have the same size in dimension 0 (one row per sample);
    otherwise indexing would silently pair the wrong rows or fail late, so the
    constructor rejects it and names the sizes.
    """

    def __init__(self, *tensors) -> None:
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        sizes = []
        for i, tensor in enumerate(tensors):
            if len(tensor.shape) == 0:
                raise ValueError(
                    f"TensorDataset: tensor {i} is 0-dimensional; every tensor needs a first (sample) dimension"
                )
            sizes.append(int(tensor.shape[0]))
        if len(set(sizes)) > 1:
            raise ValueError(
                "Size mismatch between tensors: TensorDataset needs every tensor to have the same size "
                f"in dimension 0 (one row per sample), got sizes {sizes}"
            )
        self.tensors = tensors

    def __getitem__(self, index):
        return tuple(tensor[index] for tensor in self.tensors)

    def __len__(self) -> int:
        return int(self.tensors[0].shape[0])


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order (e.g. one split of :func:`random_split`)."""

    def __init__(self, dataset, indices: Sequence[int]) -> None:
        self.dataset = dataset
        self.indices = indices

    def __getitem__(self, idx):
        if isinstance(idx, list):
            return self.dataset[[self.indices[i] for i in idx]]
        return self.dataset[self.indices[idx]]

    def __getitems__(self, indices: list[int]) -> list:
        """Batch fetch used by ``DataLoader``; forwards to the wrapped dataset's own if it has one."""
        if callable(getattr(self.dataset, "__getitems__", None)):
            return self.dataset.__getitems__([self.indices[i] for i in indices])
        return [self.dataset[self.indices[i]] for i in indices]

    def __len__(self) -> int:
        return len(self.indices)


def random_split(dataset, lengths: Sequence[int | float], generator=None) -> list[Subset]:
    """Split ``dataset`` into non-overlapping random :class:`Subset` s of the given lengths.

    As in PyTorch, ``lengths`` may be fractions summing to 1: each split gets
    ``floor(len(dataset) * fraction)`` items and the remainder is dealt out
    one by one from the first split on.
    """
    lengths = list(lengths)
    n = len(dataset)
    if math.isclose(sum(lengths), 1) and sum(lengths) <= 1:
        counts = []
        for i, fraction in enumerate(lengths):
            if fraction < 0 or fraction > 1:
                raise ValueError(f"Fraction at index {i} is not between 0 and 1")
            counts.append(int(math.floor(n * fraction)))
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        lengths = counts
    if any(length < 0 for length in lengths):
        raise ValueError(f"random_split: lengths must be non-negative, got {lengths}")
    if sum(lengths) != n:
        raise ValueError(
            f"Sum of input lengths does not equal the length of the input dataset! ({sum(lengths)} != {n})"
        )
    indices = _randperm(n, generator)
    return [
        Subset(dataset, indices[end - length : end]) for end, length in zip(itertools.accumulate(lengths), lengths)
    ]


# --------------------------------------------------------------------------- samplers


class Sampler(Generic[T_co]):
    """Base class: an iterable over dataset indices (or, for ``BatchSampler``, lists of them).

    ``data_source`` is accepted for compatibility with older PyTorch code and ignored.
    """

    def __init__(self, data_source=None) -> None:
        pass

    def __iter__(self) -> Iterator[T_co]:
        raise NotImplementedError


class SequentialSampler(Sampler[int]):
    """Indices ``0, 1, ..., len(data_source) - 1`` in order."""

    def __init__(self, data_source) -> None:
        self.data_source = data_source

    def __iter__(self) -> Iterator[int]:
        return iter(range(len(self.data_source)))

    def __len__(self) -> int:
        return len(self.data_source)


class RandomSampler(Sampler[int]):
    """Random indices: a fresh permutation on every pass, or draws with replacement.

    ``num_samples`` (default ``len(data_source)``) is how many indices one pass
    yields; without replacement, more than ``len(data_source)`` means several
    back-to-back permutations, as in PyTorch.
    """

    def __init__(self, data_source, replacement: bool = False, num_samples: int | None = None, generator=None):
        self.data_source = data_source
        self.replacement = replacement
        self._num_samples = num_samples
        self.generator = generator
        if not isinstance(replacement, bool):
            raise TypeError(f"replacement should be a boolean value, but got replacement={replacement}")
        if not isinstance(self.num_samples, int) or isinstance(self.num_samples, bool) or self.num_samples <= 0:
            raise ValueError(f"num_samples should be a positive integer value, but got num_samples={self.num_samples}")

    @property
    def num_samples(self) -> int:
        # Read len(data_source) each time: the dataset may change size between epochs.
        return len(self.data_source) if self._num_samples is None else self._num_samples

    def __iter__(self) -> Iterator[int]:
        n = len(self.data_source)
        if self.replacement:
            yield from _randint(n, self.num_samples, self.generator)
            return
        for _ in range(self.num_samples // n):
            yield from _randperm(n, self.generator)
        yield from _randperm(n, self.generator)[: self.num_samples % n]

    def __len__(self) -> int:
        return self.num_samples


class BatchSampler(Sampler[list]):
    """Groups the indices of ``sampler`` into lists of ``batch_size``; ``drop_last`` drops a short final list."""

    def __init__(self, sampler, batch_size: int, drop_last: bool) -> None:
        if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size <= 0:
            raise ValueError(f"batch_size should be a positive integer value, but got batch_size={batch_size}")
        if not isinstance(drop_last, bool):
            raise ValueError(f"drop_last should be a boolean value, but got drop_last={drop_last}")
        self.sampler = sampler
        self.batch_size = batch_size
        self.drop_last = drop_last

    def __iter__(self) -> Iterator[list[int]]:
        batch = []
        for index in self.sampler:
            batch.append(index)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        if self.drop_last:
            return len(self.sampler) // self.batch_size
        return (len(self.sampler) + self.batch_size - 1) // self.batch_size


# --------------------------------------------------------------------------- collation


def _collate_error(elem) -> TypeError:
    return TypeError(
        f"default_collate: batch must contain tensors, numpy arrays, numbers, dicts or lists; found {type(elem)}"
    )


def _is_string_or_object_array(array) -> bool:
    # Such arrays have no tensor equivalent (PyTorch rejects them too).
    return array.dtype.kind in "OSUV"


def default_collate(batch):
    """Merge a list of samples into a batch, following the structure of the first sample.

    * tensors -> stacked along a new dimension 0 (shapes must match);
    * numpy arrays -> converted to tensors, then stacked; numpy scalars -> a 1-D tensor;
    * Python floats -> a float64 tensor, ints -> int64, bools -> bool (as PyTorch);
    * str / bytes -> left as a list;
    * dicts -> a dict with each key collated across samples;
    * named tuples -> the same named tuple of collated fields;
    * tuples / lists -> transposed and collated position by position; a tuple
      sample gives a *list* (as PyTorch does), so a ``TensorDataset`` batch is ``[x, y]``.
    """
    elem = batch[0]
    if isinstance(elem, frontend.Tensor):
        shape0 = tuple(elem.shape)
        for i, item in enumerate(batch):
            if not isinstance(item, frontend.Tensor):
                raise TypeError(f"default_collate: entry 0 is a Tensor but entry {i} is {type(item)}")
            if tuple(item.shape) != shape0:
                raise RuntimeError(
                    f"stack expects each tensor to be equal size, but got {list(shape0)} at entry 0 "
                    f"and {list(item.shape)} at entry {i}"
                )
        return frontend.stack(list(batch), 0)
    if isinstance(elem, np.ndarray):
        if _is_string_or_object_array(elem):
            raise _collate_error(elem)
        # order="C" copies only arrays from_numpy may not take (e.g. negative strides) and keeps 0-d arrays 0-d.
        return default_collate([frontend.from_numpy(np.asarray(b, order="C")) for b in batch])
    if isinstance(elem, np.generic):  # before float/int: np.float64 subclasses float
        if _is_string_or_object_array(np.asarray(elem)):
            raise _collate_error(elem)
        return frontend.from_numpy(np.array(batch))
    if isinstance(elem, float):
        return frontend.tensor(batch, dtype=frontend.float64)
    if isinstance(elem, int):
        if all(isinstance(b, bool) for b in batch):
            return frontend.tensor(batch, dtype=frontend.bool)
        if all(isinstance(b, int) and not isinstance(b, bool) for b in batch):
            return frontend.tensor(batch, dtype=frontend.int64)
        return frontend.tensor(batch)  # mixed numbers: let the core infer, as torch.tensor does
    if isinstance(elem, (str, bytes)):
        return batch
    if isinstance(elem, collections.abc.Mapping):
        collated = {key: default_collate([sample[key] for sample in batch]) for key in elem}
        try:
            if isinstance(elem, collections.abc.MutableMapping):
                clone = copy.copy(elem)  # keeps the mapping's type (OrderedDict, defaultdict, ...)
                clone.update(collated)
                return clone
            return type(elem)(collated)
        except TypeError:
            return collated
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):  # namedtuple
        return type(elem)(*(default_collate(list(samples)) for samples in zip(*batch)))
    if isinstance(elem, collections.abc.Sequence):
        size = len(elem)
        if any(len(sample) != size for sample in batch):
            raise RuntimeError("each element in list of batch should be of equal size")
        transposed = [default_collate(list(samples)) for samples in zip(*batch)]
        if isinstance(elem, tuple):
            return transposed
        try:
            return type(elem)(transposed)
        except TypeError:
            return transposed
    raise _collate_error(elem)


def default_convert(data):
    """What ``DataLoader(batch_size=None)`` applies to each sample: numpy -> tensors, structure kept.

    Python numbers and strings are left alone, as in PyTorch.
    """
    if isinstance(data, frontend.Tensor):
        return data
    if isinstance(data, np.ndarray):
        return data if _is_string_or_object_array(data) else frontend.from_numpy(data)
    if isinstance(data, np.generic):
        return data if _is_string_or_object_array(np.asarray(data)) else frontend.from_numpy(np.asarray(data))
    if isinstance(data, (str, bytes)):
        return data
    if isinstance(data, collections.abc.Mapping):
        converted = {key: default_convert(data[key]) for key in data}
        try:
            if isinstance(data, collections.abc.MutableMapping):
                clone = copy.copy(data)
                clone.update(converted)
                return clone
            return type(data)(converted)
        except TypeError:
            return converted
    if isinstance(data, tuple) and hasattr(data, "_fields"):
        return type(data)(*(default_convert(d) for d in data))
    if isinstance(data, tuple):
        return [default_convert(d) for d in data]
    if isinstance(data, collections.abc.Sequence):
        try:
            return type(data)([default_convert(d) for d in data])
        except TypeError:
            return [default_convert(d) for d in data]
    return data


# --------------------------------------------------------------------------- loader


class DataLoader:
    """Iterates over ``dataset`` in batches, as ``torch.utils.data.DataLoader`` with ``num_workers=0``.

    ``shuffle=True`` uses a :class:`RandomSampler` (a new order every epoch);
    ``sampler`` or ``batch_sampler`` replace the default index order;
    ``batch_size=None`` turns batching off and yields converted single samples.
    ``num_workers``, ``pin_memory``, ``timeout``, ``worker_init_fn``,
    ``multiprocessing_context``, ``prefetch_factor``, ``persistent_workers``,
    ``pin_memory_device`` and ``in_order`` are accepted for compatibility; data
    is always loaded in the calling process.
    """

    def __init__(
        self,
        dataset,
        batch_size: int | None = 1,
        shuffle: bool | None = None,
        sampler=None,
        batch_sampler=None,
        num_workers: int = 0,
        collate_fn=None,
        pin_memory: bool = False,
        drop_last: bool = False,
        timeout: float = 0,
        worker_init_fn=None,
        multiprocessing_context=None,
        generator=None,
        *,
        prefetch_factor: int | None = None,
        persistent_workers: bool = False,
        pin_memory_device: str = "",
        in_order: bool = True,
    ) -> None:
        if num_workers < 0:
            raise ValueError("num_workers option should be non-negative; use num_workers=0 to disable multiprocessing.")
        if timeout < 0:
            raise ValueError("timeout option should be non-negative")
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError(
                    "batch_sampler option is mutually exclusive with batch_size, shuffle, sampler, and drop_last"
                )
            batch_size, drop_last = None, False
        elif batch_size is None and drop_last:
            raise ValueError(
                "batch_size=None option disables auto-batching and is mutually exclusive with drop_last"
            )
        if sampler is None:
            sampler = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)

        self.dataset = dataset
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        self.generator = generator
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.prefetch_factor = prefetch_factor
        self.persistent_workers = persistent_workers
        if collate_fn is None:
            collate_fn = default_collate if self._auto_collation else default_convert
        self.collate_fn = collate_fn

    @property
    def _auto_collation(self) -> bool:
        return self.batch_sampler is not None

    def _fetch(self, indices: list) -> list:
        fetch_many = getattr(self.dataset, "__getitems__", None)
        if callable(fetch_many):
            return fetch_many(indices)
        return [self.dataset[i] for i in indices]

    def __iter__(self):
        if self._auto_collation:
            for indices in self.batch_sampler:
                yield self.collate_fn(self._fetch(indices))
        else:
            for index in self.sampler:
                yield self.collate_fn(self.dataset[index])

    def __len__(self) -> int:
        if self._auto_collation:
            return len(self.batch_sampler)
        return len(self.sampler)
