"""Equivariant deep Q-learning: environments with a declared symmetry, a DQN whose Q-network is wrapped
by the core, and the paper's protocol (pre-train a plain DQN, continue it as each equivariant variant)."""
