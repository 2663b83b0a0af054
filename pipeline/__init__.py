"""Hyperparameter tuning for PyTorch models on Ray Tune, tracked in MLflow.

Rooms, top to bottom (each imports only rooms below it):
  cli, study, compare, context   entry points, the one orchestration, the sweep's context
  results/                       MLflow runs, report, plots, importance, registry
  execution/                     the Ray edge: trial adapter, cluster, storage, cost, progress
  search/                        space mapping, searchers (Bayesian on skopt), schedulers
  training/                      pure PyTorch: data, models, loop, LR range test
  config/                        the typed experiment; imported by every room
"""
