"""What a sweep leaves for people: MLflow runs (tracking), the summary report, plots,
hyperparameter importance, edge warnings and the model registry.

Imports MLflow, matplotlib, Ray Tune's result types and the rooms below it (config, training,
search, execution); nothing imports it but the orchestration at the top.
"""
