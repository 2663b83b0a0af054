"""What the sweep explores and in what order: the space mapping, the searchers (the Bayesian
one on scikit-optimize: space, surrogate, acquisition, bookkeeping) and the trial schedulers.

Imports Ray Tune's search and scheduler APIs, scikit-optimize and `pipeline.config`; never
MLflow, never the training code.
"""
