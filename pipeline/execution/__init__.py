"""The Ray edge: the trial adapter, which cluster and resources, where results are stored, what
trials cost and the budget that stops a sweep, the progress lines on the terminal, and what
each worker sets up before its first task.

Imports Ray, `pipeline.config`, `pipeline.training` and, for what the journal saves of the
scheduler, `pipeline.search`; never MLflow.
"""
