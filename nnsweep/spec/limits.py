"""The bounds a sweep file must stay within, so that checking and running it stays bounded.

A sweep file may come from someone else, so checking it is bounded in time and memory and
happens before any data is loaded or any store is written (:mod:`nnsweep.spec.config` applies
these; the sweep's pre-flight calls :func:`check_model_size` once the data is loaded):

* the file is at most :data:`MAX_SPEC_BYTES` of UTF-8 text, read without reading further;
* YAML is parsed by :mod:`nnsweep.spec._yaml` (aliases may not expand past 10,000 values,
  nesting past 20 levels, integers past 30 digits; no duplicate keys or control characters);
* numbers are finite; ``units`` ≤ :data:`MAX_UNITS`, ``n_layers`` ≤ :data:`MAX_LAYERS`,
  ``epochs`` ≤ :data:`MAX_EPOCHS`, ``batch_size`` ≤ :data:`MAX_BATCH_SIZE`,
  ``seed`` ≤ :data:`MAX_SEED`; ranges are sized arithmetically, never listed, and a grid
  may hold at most :data:`~nnsweep.spec.space.GRID_LIMIT` points (:func:`grid_problem`);
* the largest model the space allows (:func:`max_param_count`) must stay within the sweep
  file's ``limits.max_params`` (default :data:`DEFAULT_MAX_PARAMS`);
* values quoted in messages are cut to 80 characters (:func:`nnsweep.spec.space.short_repr`).
"""

from __future__ import annotations

from nnsweep.errors import SpecError
from nnsweep.spec.space import GRID_LIMIT, Dimension

MAX_SPEC_BYTES = 256 * 1024
MAX_UNITS = 65_536
MAX_LAYERS = 32
MAX_EPOCHS = 10_000
MAX_BATCH_SIZE = 1_048_576
MAX_SEED = 2**32 - 1  # NumPy's and Optuna's samplers take 32-bit seeds
MAX_TRIALS = 1_000_000
MAX_TIMEOUT = 100_000_000.0  # seconds, about three years
MAX_DESCRIPTION_CHARS = 10_000
DEFAULT_MAX_PARAMS = 50_000_000
MAX_PARAMS_CEILING = 10**12  # the most limits.max_params may be raised to

# input width and outputs of datasets known by name alone (the digits: Input(784), Dense(10))
KNOWN_SHAPES = {"mnist": (784, 10), "fashion_mnist": (784, 10), "mnist_5k": (784, 10)}


def max_param_count(
    n_layers: Dimension, units_dim: Dimension, input_dim: int, n_outputs: int
) -> int:
    """Trainable parameters of the largest MLP a space allows: the most hidden layers
    (``n_layers``), each of the most units (``units_dim``), between ``input_dim`` inputs and
    ``n_outputs`` outputs (weights and biases of every Dense layer). Computed, never built."""
    layers = int(n_layers.largest())
    units = int(units_dim.largest())
    return (input_dim + 1) * units + (layers - 1) * (units + 1) * units + (units + 1) * n_outputs


def model_size_problem(
    n_layers: Dimension, units_dim: Dimension, limit: int, input_dim: int, n_outputs: int
) -> str | None:
    """What is wrong when the largest model is over ``limit`` (``limits.max_params``), else
    None."""
    count = max_param_count(n_layers, units_dim, input_dim, n_outputs)
    if count <= limit:
        return None
    layers, units = int(n_layers.largest()), int(units_dim.largest())
    return (
        f"the largest model in space ({layers} hidden layer{'s' * (layers > 1)} of {units:,} "
        f"units, {input_dim:,} inputs, {n_outputs:,} outputs) has {count:,} parameters, over "
        f"limits.max_params = {limit:,}; shrink space.units or space.n_layers, or raise "
        "limits.max_params"
    )


def check_model_size(
    n_layers: Dimension, units_dim: Dimension, limit: int, input_dim: int, n_outputs: int
) -> None:
    """Refuse a space whose largest model has more than ``limit`` parameters.

    The sweep's pre-flight calls it (through ``SweepSpec.check_model_size``) once the data is
    loaded (a table's input width is known only then), before any store is written. Raises
    :class:`SpecError`.
    """
    problem = model_size_problem(n_layers, units_dim, limit, input_dim, n_outputs)
    if problem:
        raise SpecError(problem)


def grid_problem(dims: dict[str, Dimension], n_layers: Dimension) -> str | None:
    """What is wrong with the grid ``GridSampler`` would list over ``dims`` (every sampled
    dimension by name; ``units`` repeats once per layer of the deepest model, ``n_layers``),
    counted without listing it: a continuous dimension, or more than :data:`GRID_LIMIT`
    points."""
    points = 1
    for key, dim in dims.items():
        size = dim.size()
        if size is None:
            return (
                f"sampler grid needs a finite space, but space.{key} is a continuous range; "
                "give a list of values or a step"
            )
        # one units_i per layer of the deepest model, each over the same values
        repeat = int(n_layers.largest()) if key == "units" else 1
        for _ in range(repeat):
            points *= size
            if points > GRID_LIMIT:
                return (
                    f"sampler grid: the space has more than {GRID_LIMIT:,} grid points "
                    f"(space.{key} alone has {size:,} values); give fewer values or use "
                    "another sampler"
                )
    return None
