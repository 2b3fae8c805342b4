"""Groups and how they act: group values, actions on tensors and text, canonical frames, word groups.

The lowest layer: it imports only ``equinlp.errors`` and ``equinlp.files``.
"""
