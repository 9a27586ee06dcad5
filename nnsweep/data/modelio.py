"""What an exported model reads and answers: task, labels, feature columns, input name and width.

:class:`ModelIO` is written into the model card (``io``) and next to every model the sweep
logs in MLflow (``nnsweep.json``), so ``nnsweep predict`` can turn raw rows into the model's
inputs and its outputs back into the original labels without the training data. Read back
from a file anyone may have edited, so :meth:`ModelIO.from_dict` checks every field and
:meth:`ModelIO.check_model` checks it against the Keras model it describes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nnsweep.data.features import FeatureSchema
from nnsweep.data.splits import label_value
from nnsweep.errors import ExportError
from nnsweep.tasks import DIGITS, Task

if TYPE_CHECKING:
    import keras

    from nnsweep.data.load import Dataset

DIGIT_INPUT = "pixels"
DIGIT_WIDTH = 784
MAX_COLUMNS = 10_000
MAX_LABEL_CHARS = 1_000


@dataclass(frozen=True)
class ModelIO:
    """The contract of a trained model: what goes in, what comes out, what the labels mean."""

    task: Task
    class_names: tuple[Any, ...] | None
    schema: FeatureSchema | None
    input_name: str
    input_width: int
    target: str | None = None

    @classmethod
    def of(cls, data: Dataset) -> ModelIO:
        names = data.class_names if data.task.is_classification else None
        return cls(
            task=data.task,
            class_names=tuple(label_value(v) for v in names) if names is not None else None,
            schema=data.schema,
            input_name=data.input_name,
            input_width=int(data.input_width),
            target=data.target,
        )

    @property
    def is_digits(self) -> bool:
        """A 28x28 digit model (784 pixels → 10 classes): it reads images."""
        return (
            self.schema is None
            and self.input_name == DIGIT_INPUT
            and self.input_width == DIGIT_WIDTH
            and self.task.kind == DIGITS.kind
            and self.task.n_classes == DIGITS.n_classes
        )

    @property
    def labels(self) -> tuple[Any, ...]:
        """Class names by index (the indices themselves when none were recorded)."""
        if self.class_names is not None:
            return self.class_names
        return tuple(range(self.task.n_classes or 0))

    def describe_input(self) -> str:
        """One sentence on what the model takes."""
        if self.is_digits:
            return (
                "float32 rows of 784 pixels in [0, 1] (28x28 images, row-major), white digit on "
                "black as in MNIST"
            )
        if self.schema is not None:
            cols = self.schema.names
            shown = ", ".join(cols[:20]) + (f", … ({len(cols)} in all)" if len(cols) > 20 else "")
            return (
                f"raw feature rows with the columns {shown} ({self.schema.describe()}); "
                "preprocessing (imputation, standardisation, one-hot) is inside the model"
            )
        if self.input_name == "words":
            return (
                f"multi-hot rows of {self.input_width} values (1 where that word id occurs in "
                "the text, as Keras' imdb/reuters loaders number words), input 'words'"
            )
        return f"float32 rows of {self.input_width} values (input {self.input_name!r})"

    def describe_output(self) -> str:
        """One sentence on what the model answers."""
        kind = self.task.kind
        if kind == "binary":
            low, high = self.labels[0], self.labels[1]
            return f"probability of class {high!r} (sigmoid); {low!r} below 0.5"
        if kind == "multiclass":
            return f"{self.task.n_classes} class probabilities (softmax), in label order"
        target = f" {self.target!r}" if self.target else ""
        return f"the predicted value of the target{target}, in its own units"

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.task.as_dict(),
            "class_names": list(self.class_names) if self.class_names is not None else None,
            "target": self.target,
            "input_name": self.input_name,
            "input_width": self.input_width,
            "features": self.schema.as_dict() if self.schema is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Any, where: str) -> ModelIO:
        """Inverse of :meth:`as_dict`, refusing anything malformed.

        Raises:
            ExportError: naming ``where`` (the file read) and the field.
        """

        def bad(field: str, why: str) -> ExportError:
            return ExportError(f"{where}: {field} {why}; re-export the model with nnsweep")

        if not isinstance(data, Mapping):
            raise bad("io", "is not an object")
        try:
            n = data.get("n_classes")
            task = Task(data["task"], int(n) if n is not None else None)
        except (KeyError, TypeError, ValueError) as exc:
            raise bad("io.task", f"is not a task nnsweep knows ({exc})") from None
        names = data.get("class_names")
        if names is not None:
            if not isinstance(names, list) or len(names) != task.n_classes:
                raise bad("io.class_names", f"is not a list of {task.n_classes} labels")
            if not all(_plain_label(v) for v in names):
                raise bad("io.class_names", "holds a label that is not a short string or number")
        features = data.get("features")
        schema = None
        if features is not None:
            if not isinstance(features, list) or not 0 < len(features) <= MAX_COLUMNS:
                raise bad("io.features", f"is not a list of 1 to {MAX_COLUMNS:,} columns")
            try:
                schema = FeatureSchema.from_dict(features)
            except (KeyError, TypeError, ValueError) as exc:
                raise bad("io.features", f"is malformed ({type(exc).__name__}: {exc})") from None
        name, width = data.get("input_name"), data.get("input_width")
        if not isinstance(name, str) or not isinstance(width, int) or width < 1:
            raise bad("io.input_name/input_width", "are missing or not a name and a width")
        target = data.get("target")
        return cls(
            task=task,
            class_names=tuple(names) if names is not None else None,
            schema=schema,
            input_name=name,
            input_width=width,
            target=str(target) if target is not None else None,
        )

    def check_model(self, net: keras.Model, where: str) -> None:
        """Refuse a model whose inputs or outputs are not the ones this contract describes.

        Raises:
            ExportError: naming ``where``, what the model has and what was expected.
        """
        have = sorted(_input_names(net))
        if self.schema is not None:
            expected = sorted({c.input for c in self.schema.columns})
        else:
            expected = [self.input_name]
        units = tuple(net.output_shape)[1:]
        if have != expected or units != (self.task.output_units,):
            raise ExportError(
                f"{where}: the model takes {', '.join(have)} and gives {units}, but its card "
                f"describes {', '.join(expected)} → ({self.task.output_units},); give a model "
                "exported by nnsweep with its own card"
            )


def digits_io() -> ModelIO:
    """The contract of a digit model that carries no card (an older export or a bare file)."""
    return ModelIO(DIGITS, tuple(range(10)), None, DIGIT_INPUT, DIGIT_WIDTH)


def _input_names(net: keras.Model) -> list[str]:
    inputs = net.inputs
    return [str(t.name).split(":")[0] for t in inputs]


def _plain_label(value: Any) -> bool:
    if isinstance(value, bool) or value is None:
        return isinstance(value, bool)
    if isinstance(value, int | float):
        return True
    return isinstance(value, str) and len(value) <= MAX_LABEL_CHARS
