"""One trial: build the Keras MLP, fit it, judge the fit, and log what it produced.

Modules: :mod:`.objective` (the Optuna objective), :mod:`.result` (``TrialResult``, ``Step``),
:mod:`.steps` (what is logged after a fit), :mod:`.modellog` (the best-so-far model step),
:mod:`.model` (the MLP), :mod:`.pipeline` (tf.data batches), :mod:`.traineval` (dropout-off
train scores), :mod:`.diagnosis` (fit verdicts), :mod:`.plots` (learning curves),
:mod:`.retrain` (refit on train+val), :mod:`.runtime` and :mod:`.devices` (threads, GPUs).
"""
