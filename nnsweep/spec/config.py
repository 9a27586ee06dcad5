"""The sweep file: YAML in, a validated :class:`SweepSpec` out.

Every problem becomes one :class:`~nnsweep.errors.SpecError` line that names the file, the
field, the rule and the value, e.g.
``sweeps/x.yaml: space.activation: 'relux' is not one of relu, elu, …``.

A sweep file may come from someone else: checking it is bounded in time and memory, within
the limits :mod:`nnsweep.spec.limits` lists (file size, YAML aliases and nesting, caps on units,
layers, epochs, batch size and seed, grid size, the largest model's parameter count).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
    model_validator,
)

from nnsweep.errors import SpecError, first_line
from nnsweep.spec import _yaml as _safe_yaml
from nnsweep.spec._strict import Strict as _Strict
from nnsweep.spec.dataset import DatasetFields, known_task
from nnsweep.spec.diagnosis import DiagnosisSpec
from nnsweep.spec.limits import (
    DEFAULT_MAX_PARAMS,
    KNOWN_SHAPES,
    MAX_BATCH_SIZE,
    MAX_DESCRIPTION_CHARS,
    MAX_EPOCHS,
    MAX_LAYERS,
    MAX_PARAMS_CEILING,
    MAX_SEED,
    MAX_SPEC_BYTES,
    MAX_TIMEOUT,
    MAX_TRIALS,
    MAX_UNITS,
    check_model_size,
    grid_problem,
    max_param_count,
    model_size_problem,
)
from nnsweep.spec.multi import multi_objective_problem
from nnsweep.spec.space import (
    Dimension,
    Fixed,
    FloatRange,
    parse_categorical,
    parse_numeric,
    short_repr,
)
from nnsweep.spec.start import StartWithField, start_with_problem
from nnsweep.spec.stop import StopField
from nnsweep.spec.tabular import TabularSpaceFields
from nnsweep.spec.warm import WarmStartField
from nnsweep.tasks import OBJECTIVE_DIRECTIONS, check_objective_for, default_objective_for

ACTIVATIONS = (
    "relu", "elu", "selu", "tanh", "sigmoid", "softplus", "softsign",
    "hard_sigmoid", "linear", "leaky_relu", "gelu", "swish", "softmax",
)  # fmt: skip
OPTIMIZERS = ("sgd", "sgd_momentum", "rmsprop", "adam", "adamw", "nadam")
LR_SCHEDULES = ("constant", "cosine")

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def check_name(name: str) -> str:
    """``name`` when it is usable as a sweep or study name, else ValueError with the rule."""
    if not _NAME_RE.match(name):
        raise ValueError(
            f"{short_repr(name)} is not a usable study name; use up to 100 letters, digits, "
            "'_', '-' or '.'"
        )
    return name


def _shorthand(key: str) -> BeforeValidator:
    """Let ``section: value`` stand for ``section: {key: value}``."""
    return BeforeValidator(lambda v: {key: v} if isinstance(v, str | int | float) else v)


_AS_YAML = PlainSerializer(lambda dim: dim.raw())


def _num(kind: type, **bounds: Any) -> BeforeValidator:
    return BeforeValidator(lambda raw: parse_numeric(raw, kind, **bounds))


def _cat(allowed: tuple[str, ...]) -> BeforeValidator:
    return BeforeValidator(lambda raw: parse_categorical(raw, allowed))


class DatasetSpec(_Strict, DatasetFields):
    """Which data to train on: a named dataset, or a table file with the column to predict.

    ``name`` picks a bundled or Keras dataset (``path`` then optionally points at its local
    copy); without ``name``, ``path`` is a ``.csv``/``.tsv``/``.parquet`` table with a
    ``target`` column, or an ``.npz`` with arrays ``x``/``y`` (or ``x_train``/``y_train``
    [+ ``x_test``/``y_test``]). ``validation`` (default 0.1 for the digits, else 0.2) is the
    share of the training part held out; ``test`` (tables only, default 0.2) the share held
    out as the test split, unless an ``.npz`` brings its own.
    """


class ObjectiveSpec(_Strict):
    """What Optuna optimises: a validation metric, reduced over epochs by its best or last value.

    ``metric`` defaults to the task's own (``val_accuracy`` for classification, ``val_mae`` for
    regression), filled in by :meth:`SweepSpec.for_task` once the task is known: at parse time
    for a named dataset or a table with ``dataset.task``, after loading for an inferred one.
    ``direction`` follows the metric (accuracy and AUC are maximised, losses and errors
    minimised); giving the other one is an error.

    ``also`` (``params`` or ``latency``) makes the study multi-objective: the metric is traded
    against the trial model's trainable parameters or its one-row CPU latency p50 (ms), both
    minimised (:mod:`nnsweep.study.objectives`); pruning still judges the metric alone
    (:mod:`nnsweep.train.prune`).
    """

    metric: Literal["val_accuracy", "val_loss", "val_auc", "val_mae"] | None = None
    direction: Literal["maximize", "minimize"] | None = None
    reduce: Literal["best", "last"] = "best"
    also: Literal["params", "latency"] | None = None

    @model_validator(mode="after")
    def _direction_matches(self) -> ObjectiveSpec:
        if self.metric is None:
            return self
        natural = OBJECTIVE_DIRECTIONS[self.metric]
        if self.direction is None:
            object.__setattr__(self, "direction", natural)
        elif self.direction != natural:
            raise ValueError(
                f"{self.metric} should be {natural}d, but direction is {self.direction}; "
                f"set direction: {natural} or leave it out"
            )
        return self

    @property
    def key(self) -> str:
        """The metric, once the task has filled it in (every spec a sweep runs has it).

        Raises:
            SpecError: the metric is still unresolved (the data has not been loaded yet).
        """
        if self.metric is None:
            raise SpecError("objective.metric: not resolved yet; load the data first")
        return self.metric

    @property
    def goal(self) -> str:
        """The direction, once the metric is known (``maximize`` or ``minimize``)."""
        return self.direction or OBJECTIVE_DIRECTIONS[self.key]


class SamplerSpec(_Strict):
    """The sampler; ``nsga2`` is Optuna's NSGA-II, made for ``objective.also`` studies."""

    name: Literal["tpe", "random", "grid", "cmaes", "qmc", "nsga2"] = "tpe"
    n_startup_trials: int | None = Field(None, ge=0, le=MAX_TRIALS)


class PrunerSpec(_Strict):
    """Stops unpromising trials early from their per-epoch validation metric."""

    name: Literal["median", "hyperband", "successive_halving", "none"] = "median"
    n_startup_trials: int = Field(5, ge=0, le=MAX_TRIALS)
    n_warmup_steps: int = Field(2, ge=0, le=MAX_EPOCHS)
    min_resource: int = Field(1, ge=1, le=MAX_EPOCHS)
    reduction_factor: int = Field(3, ge=2, le=MAX_EPOCHS)


class EarlyStoppingSpec(_Strict):
    patience: int = Field(3, ge=1, le=MAX_EPOCHS)
    min_delta: float = Field(0.0, ge=0.0)
    restore_best_weights: bool = True


DEFAULT_BATCH_SIZE = 128
MIN_STEPS_PER_EPOCH = 8


def default_batch_size(n_train: int) -> int:
    """The batch size when a sweep file names none: 128, or on a small training split the
    largest power of two that still gives an epoch :data:`MIN_STEPS_PER_EPOCH` optimizer
    steps (at least 8): 96 training rows train in batches of 8, 365 in batches of 32, not in
    one batch of 128 per epoch."""
    size = DEFAULT_BATCH_SIZE
    while size > 8 and n_train < size * MIN_STEPS_PER_EPOCH:
        size //= 2
    return size


class TrainSpec(_Strict):
    """Fit settings. ``batch_size`` left out: :func:`default_batch_size` of the training split."""

    epochs: int = Field(10, ge=1, le=MAX_EPOCHS)
    batch_size: int | None = Field(None, ge=1, le=MAX_BATCH_SIZE)
    early_stopping: EarlyStoppingSpec | None = None


LayersDim = Annotated[Dimension, _num(int, minimum=1, at_most=MAX_LAYERS), _AS_YAML]
UnitsDim = Annotated[Dimension, _num(int, minimum=1, at_most=MAX_UNITS), _AS_YAML]
BatchSizeDim = Annotated[Dimension, _num(int, minimum=1, at_most=MAX_BATCH_SIZE), _AS_YAML]
EpochsDim = Annotated[Dimension, _num(int, minimum=1, at_most=MAX_EPOCHS), _AS_YAML]


class LimitsSpec(_Strict):
    """Safety limits, checked before anything runs; raise them on purpose for bigger models."""

    max_params: int = Field(DEFAULT_MAX_PARAMS, ge=1, le=MAX_PARAMS_CEILING)


class SpaceSpec(_Strict, TabularSpaceFields):
    """The hyperparameters Optuna samples; each entry fixed, a list of choices or a range (the
    tabular techniques: :mod:`nnsweep.spec.tabular`). Left out whole: :mod:`.defaults`."""

    n_layers: LayersDim = Fixed(1)
    units: UnitsDim = Fixed(128)
    activation: Annotated[Dimension, _cat(ACTIVATIONS), _AS_YAML] = Fixed("relu")
    optimizer: Annotated[Dimension, _cat(OPTIMIZERS), _AS_YAML] = Fixed("adam")
    learning_rate: Annotated[Dimension, _num(float, positive=True), _AS_YAML] = Fixed(1e-3)
    lr_schedule: Annotated[Dimension, _cat(LR_SCHEDULES), _AS_YAML] = Fixed("constant")
    batch_size: BatchSizeDim | None = None
    dropout: Annotated[Dimension, _num(float, minimum=0.0, maximum=1.0), _AS_YAML] = Fixed(0.0)
    epochs: EpochsDim | None = None

    def dimensions(self) -> dict[str, Dimension]:
        return {k: v for k, v in self if isinstance(v, Dimension)}


class SweepSpec(_Strict):
    """A whole sweep file."""

    name: str
    dataset: Annotated[DatasetSpec, _shorthand("name")]
    trials: int | None = Field(None, ge=1, le=MAX_TRIALS)
    trials_count: Literal["complete", "all"] = "complete"
    timeout: float | None = Field(None, gt=0, le=MAX_TIMEOUT)
    seed: int = Field(0, ge=0, le=MAX_SEED)
    objective: Annotated[ObjectiveSpec, _shorthand("metric")] = ObjectiveSpec()
    sampler: Annotated[SamplerSpec, _shorthand("name")] = SamplerSpec()
    pruner: Annotated[PrunerSpec, _shorthand("name")] = PrunerSpec()
    train: TrainSpec = TrainSpec()
    space: SpaceSpec = SpaceSpec()
    diagnosis: DiagnosisSpec = DiagnosisSpec()
    log_models: Literal["best", "all", "none"] = "best"
    limits: LimitsSpec = LimitsSpec()
    description: str = Field("", max_length=MAX_DESCRIPTION_CHARS)
    stop: StopField = None  # nnsweep.spec.stop
    warm_start: WarmStartField = None  # nnsweep.spec.warm
    start_with: StartWithField = None  # nnsweep.spec.start

    @field_validator("name")
    @classmethod
    def _valid_name(cls, v: str) -> str:
        return check_name(v)

    @model_validator(mode="after")
    def _budget_and_grid(self) -> SweepSpec:
        # neither trials nor timeout: the default budget, once the data is known (.defaults)
        if self.sampler.name == "grid" and (
            problem := grid_problem(self.grid_dims(), self.space.n_layers)
        ):
            raise ValueError(problem)
        if isinstance(self.space.dropout, FloatRange) and self.space.dropout.log:
            raise ValueError("space.dropout cannot be a log range (it may be 0)")
        if problem := multi_objective_problem(self):
            raise ValueError(problem)
        if problem := start_with_problem(self):
            raise ValueError(problem)
        # a table's input width is known once it is loaded (the sweep's pre-flight checks
        # again then); 1 input and 1 output give a lower bound that is still worth checking
        shape = KNOWN_SHAPES.get(str(self.dataset.name), (1, 1))
        if problem := model_size_problem(
            self.space.n_layers, self.space.units, self.limits.max_params, *shape
        ):
            raise ValueError(problem)
        # the task of a named dataset or of a table with dataset.task is known now: its
        # objective is checked (and defaulted) at parse time; an inferred one after loading
        if (kind := known_task(self.dataset)) is not None:
            try:
                object.__setattr__(self, "objective", _objective_for(self.objective, kind))
            except SpecError as exc:
                raise ValueError(str(exc)) from None
        return self

    def for_task(self, kind: str) -> SweepSpec:
        """This spec with the objective of a ``kind`` task: defaulted, and checked against it.

        Raises:
            SpecError: a metric (or direction) the task does not log, with the allowed ones.
        """
        objective = _objective_for(self.objective, kind)
        return (
            self
            if objective == self.objective
            else self.model_copy(update={"objective": objective})
        )

    # -- derived views -------------------------------------------------------------------
    def grid_dims(self) -> dict[str, Dimension]:
        """Every dimension a sampler draws, by name (the space's, batch size and epochs)."""
        dims: dict[str, Dimension] = self.space.dimensions()
        dims["batch_size"], dims["epochs"] = self.batch_size_dim, self.epochs_dim
        return dims

    def max_param_count(self, input_dim: int, n_outputs: int) -> int:
        """Trainable parameters of the largest model this space allows (:mod:`.limits`)."""
        return max_param_count(self.space.n_layers, self.space.units, input_dim, n_outputs)

    def check_model_size(self, input_dim: int, n_outputs: int) -> None:
        """Raise :class:`SpecError` when the largest model is over ``limits.max_params``."""
        check_model_size(
            self.space.n_layers, self.space.units, self.limits.max_params, input_dim, n_outputs
        )

    @property
    def epochs_dim(self) -> Dimension:
        return self.space.epochs or Fixed(self.train.epochs)

    @property
    def batch_size_dim(self) -> Dimension:
        return self.space.batch_size or Fixed(self.train.batch_size or DEFAULT_BATCH_SIZE)

    def for_train_size(self, n_train: int) -> SweepSpec:
        """This spec with the batch size of :func:`default_batch_size` filled in when the file
        names none (neither ``train.batch_size`` nor ``space.batch_size``)."""
        if self.space.batch_size is not None or self.train.batch_size is not None:
            return self
        train = self.train.model_copy(update={"batch_size": default_batch_size(n_train)})
        return self.model_copy(update={"train": train})

    @property
    def max_epochs(self) -> int:
        return int(self.epochs_dim.largest())

    def with_overrides(self, **changes: Any) -> SweepSpec:
        """A copy with CLI overrides applied (``None`` values are ignored), re-validated."""
        # only what was given: a section left out (space, the budget) stays out, for .defaults
        data = self.model_dump(mode="json", exclude_none=True, exclude_unset=True)
        for key, value in changes.items():
            if value is None:
                continue
            if key == "data_path":
                data["dataset"] = {**data["dataset"], "path": value}
            else:
                data[key] = value
        return _validate(data, "command line")


def _objective_for(objective: ObjectiveSpec, kind: str) -> ObjectiveSpec:
    metric = objective.metric or default_objective_for(kind)
    check_objective_for(kind, metric, objective.direction)
    if metric == objective.metric:
        return objective
    return ObjectiveSpec(
        metric=metric, direction=objective.direction, reduce=objective.reduce, also=objective.also
    )


def _format_error(err: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
    loc = re.sub(
        r"\.?(DatasetSpec|ObjectiveSpec|SamplerSpec|PrunerSpec|function-after\[.*?\])", "", loc
    )
    kind = err["type"]
    msg = str(err["msg"])
    if kind == "value_error":
        msg = msg.removeprefix("Value error, ")
    elif kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        allowed = expected.replace("'", "").replace(" or ", ", ")
        msg = f"{short_repr(err['input'])} is not one of {allowed}"
    elif kind == "missing":
        msg = "required field is missing"
    elif "input" in err and not isinstance(err["input"], dict):
        msg = f"{msg}, but got {short_repr(err['input'])}"
    return f"{loc}: {msg}" if loc else msg


def _validate(data: Any, source: str) -> SweepSpec:
    if not isinstance(data, dict):
        raise SpecError(f"{source}: a sweep file must be a YAML mapping (name: …, dataset: …)")
    try:
        return SweepSpec.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        raise SpecError(f"{source}: {_format_error(dict(errors[0]))}{more}") from None


def parse_spec(text: str, source: str = "<sweep>") -> SweepSpec:
    """Parse and validate sweep-file text. Raises :class:`SpecError`."""
    import yaml

    if len(text) > MAX_SPEC_BYTES:
        raise SpecError(
            f"{source}: a sweep file is at most {MAX_SPEC_BYTES:,} bytes, but this one has "
            f"{len(text):,} characters"
        )
    try:
        data = _safe_yaml.load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or first_line(exc)
        kind = "" if isinstance(exc, _safe_yaml.LimitError) else "invalid YAML: "
        raise SpecError(f"{source}: {where}{kind}{problem}") from None
    return _validate(data, source)


def load_spec(path: str | Path) -> SweepSpec:
    """Read and validate a sweep file. Raises :class:`SpecError`."""
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"{p}: sweep file not found; pass a path such as sweeps/quickstart.yaml")
    return parse_spec(_safe_yaml.read_text(p, MAX_SPEC_BYTES), str(p))
