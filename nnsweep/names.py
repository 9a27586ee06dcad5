"""Every name nnsweep writes into a store or reads from the environment, defined once.

MLflow tags (``*_TAG``), Optuna user attributes (``*_ATTR``), keys used as both (``*_KEY``)
and environment variables (``*_ENV``). Renaming one here renames it everywhere; changing a
value makes stores written before the change unreadable by name, so values never change.
This module imports nothing: every other module may import it.
"""

from __future__ import annotations

# --- keys written both as an Optuna user attribute and as an MLflow run tag -------------------
HOST_KEY = "nnsweep.host"  # the host name of the process that ran the trial / the sweep
PID_KEY = "nnsweep.pid"  # its process id (with HOST_KEY: tells a dead local process)
FAIL_REASON_KEY = "nnsweep.fail_reason"  # one line: why a trial failed
# why the stop rule ended the sweep: a study attribute (reason and COMPLETE count, read by
# nnsweep/sweep/stop.py) and a parent-run tag (the reason)
STOP_KEY = "nnsweep.stopped"
# the study (and storage) a sweep warm-started from: study attribute and parent-run tag
WARM_START_KEY = "nnsweep.warm_start"
# the reads of a study's test split: one study attribute per read, named
# "nnsweep.test_read.<time ns>-<random>" (export/ledger.py), and a trial-run tag naming which
# read its test_* metrics are
TEST_READ_KEY = "nnsweep.test_read"

# --- Optuna study user attributes ------------------------------------------------------------
OBJECTIVE_ATTR = "nnsweep.objective"  # the objective's metric name, e.g. val_accuracy
SPEC_ATTR = "nnsweep.spec"  # the sweep spec (a dict) the study was created with
COMPARABLE_ATTR = "nnsweep.comparable"  # the settings that make trials comparable (comparable.py)
EXPERIMENT_ATTR = "nnsweep.experiment_id"  # the study's MLflow experiment id

# --- Optuna trial user attributes ------------------------------------------------------------
PARAMS_ATTR = "nnsweep.params"  # the trial's full hyperparameters (incl. fixed ones)
RUN_ID_ATTR = "nnsweep.mlflow_run_id"  # the trial's MLflow child run id
SURPLUS_ATTR = "nnsweep.surplus"  # a trial that stepped back because the target was filled
HISTORY_ATTR = "nnsweep.history"  # "STUDY#N": a trial copied from an earlier study

# --- MLflow run tags ---------------------------------------------------------------------------
ROLE_TAG = "nnsweep.role"  # "study" (the parent run of one sweep process) or "trial"
STUDY_TAG = "nnsweep.study"  # the Optuna study name (also on logged models and model versions)
TRIAL_TAG = "nnsweep.trial"  # the Optuna trial number (also on logged models and model versions)
STATE_TAG = "nnsweep.state"  # the trial's final state: COMPLETE, PRUNED or FAIL
CHANGES_TAG = "nnsweep.changes"  # a resume's changes to the study's first spec
STORAGE_TAG = "nnsweep.storage"  # the Optuna storage URL, password masked (parent run)
DATASET_TAG = "nnsweep.dataset"  # "name (source)" of the sweep's dataset (parent run)
BEST_TRIAL_TAG = "nnsweep.best.trial"  # parent run: the best trial's number so far
BEST_VALUE_TAG = "nnsweep.best.value"  # parent run: the best trial's objective value
BEST_PARAMS_TAG = "nnsweep.best.params"  # parent run: the best trial's params (JSON)
FIT_TAG = "nnsweep.fit"  # the verdict: underfit, good, generalisation_gap, overfit or pruned
FIT_REASON_TAG = "nnsweep.fit_reason"  # one line: why that verdict
FIT_RULE_TAG = "nnsweep.fit_rule"  # the deciding figure, e.g. "val_loss_rise 0.27 > 0.15"
ARTIFACT_ERROR_TAG = "nnsweep.artifact_error"  # a per-trial artifact that could not be written
MODEL_ERROR_TAG = "nnsweep.model_error"  # why the trial's model could not be logged
BEST_SO_FAR_TAG = "nnsweep.best_so_far"  # the trial's model was the best when it finished
MODEL_URI_TAG = "nnsweep.model_uri"  # the models:/m-… URI of the trial's logged model
RETRAINED_TAG = "nnsweep.retrained"  # on an exported model version: refitted on train+val
BOUNDS_TAG = "nnsweep.bound_warnings"  # parent run: the "what we learned" bound warnings

# --- environment variables ---------------------------------------------------------------------
STORAGE_ENV = "NNSWEEP_STORAGE"  # the Optuna storage URL when --storage is not given
WARM_START_STORAGE_ENV = "NNSWEEP_WARM_START_STORAGE"  # --warm-start-storage
DASHBOARD_STORAGE_ENV = "NNSWEEP_DASHBOARD_STORAGE"  # the storage URL handed to optuna-dashboard
