"""The WSGI app for gunicorn: ``gunicorn -k gevent controller.app.wsgi:application`` (no ``--preload``).

gunicorn's gevent worker patches the process before it imports this module, so the psycopg wait
is switched here; each worker then opens its own pool and its own xml_curl snapshot.
"""

from __future__ import annotations

from controller import runtime
from controller.app import green
from controller.app.farm import Farm

green.ensure_green_psycopg()
farm = Farm.open(runtime.settings())
application = farm.web_app()
