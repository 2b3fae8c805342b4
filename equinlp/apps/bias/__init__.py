"""Debiased generation and its benchmark: Sheng et al. (2019) prompts, masked sentiment/regard scoring,
bootstrap intervals and the scorer's own floor (issue 4; generation and CLI come next)."""
