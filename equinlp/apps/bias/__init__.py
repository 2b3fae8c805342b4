"""Debiased generation and its benchmark: Sheng et al. (2019) prompts, masked sentiment/regard scoring,
bootstrap intervals, the scorer's own floor, and counterfactual metrics (``equinlp bias run`` / ``report``)."""
