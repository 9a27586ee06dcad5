"""Write the bundled example tables (data/*.csv) from scikit-learn's copies of public datasets.

Run once by the maintainers (``python data/make_tables.py``, needs scikit-learn); the CSV files
are committed, so the sweeps that read them run offline from a fresh clone without it.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent


def main() -> None:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    # the UCI file's own labels: M(alignant) / B(enign); scikit-learn codes them 0/1
    frame.insert(0, "diagnosis", frame.pop("target").map({0: "M", 1: "B"}))
    frame.to_csv(HERE / "breast_cancer.csv", index=False, float_format="%.6g")


if __name__ == "__main__":
    main()
