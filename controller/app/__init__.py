"""The one place that wires the farm: the only package that imports every room.

``green`` patches gevent once; ``farm.Farm`` holds the settings (read once), the database (opened
once) and builds every loop, worker and server the same way for ``fsfarm up`` (``up``),
``fsfarm failover watch``, ``fsfarm workers``, ``fsfarm ivr serve`` and the Celery worker
(``tasks``); ``wsgi`` serves the same app under gunicorn. The rooms import only the core
(``controller.config``, ``errors``, ``domain``, ``database``, ``stores``, ``storage``, ``runtime``,
``bearer``) and get cross-room steps as callables from here. ``pyproject.toml``'s import-linter
contracts keep it so.
"""
