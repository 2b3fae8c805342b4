"""The one formula ``M_G(x) = Σ_g w_g(x) · g⁻¹ M(g x)``: aggregators (the weights), ``combine``, the method registry.

Imports ``equinlp.symmetry`` and nothing above it.
"""
