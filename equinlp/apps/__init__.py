"""The applications, each a task filled into the harness: ``generate``, ``bias``, ``scan``, ``vision``, ``rl``.

An application imports the layers below it and never another application.
"""
