"""Vision: invariant image classifiers (CNNs and CLIP) under rotations and flips, with the same core."""
