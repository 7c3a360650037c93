"""fsfarm's HD conference mixer sidecar: SIP legs in, numpy N-1 mixing, JSON control (see docs/mixer.md).

Modules: ``mix`` (the pure kernel), ``codecs`` (one module per codec), ``rtp``/``jitter``/``clock``
(media transport), ``sdp``/``sip`` (signalling), ``engine`` (the running mixer), ``api`` (control
API blueprint) and ``cli`` (``fsfarm mixer``).
"""
