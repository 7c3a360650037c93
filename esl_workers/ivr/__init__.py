"""The IVR SDK: write ``@ivr("name")`` functions taking a ``Session``; ``serve_ivr`` runs them.

Example script (``scripts/hello.py``)::

    from esl_workers.ivr import ivr

    @ivr("hello")
    def hello(session):
        session.answer()
        session.playback("ivr/ivr-welcome.wav")
        session.hangup()
"""

from esl_workers.ivr.loader import ivr
from esl_workers.ivr.server import IvrConfig, IvrServer, serve_ivr
from esl_workers.ivr.session import CallEnded, Session

__all__ = ["CallEnded", "IvrConfig", "IvrServer", "Session", "ivr", "serve_ivr"]
