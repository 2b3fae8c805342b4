"""SCAN (Lake & Baroni 2018): the data regenerated from its grammar, seq2seq baselines, equivariant runs."""
