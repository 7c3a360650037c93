"""Conference PIN entry: ask for the room's PIN, let the caller in on a match, three tries.

Options: ``{"room": "3000", "pin": "4321"}`` (the room number inside the tenant and its PIN).
"""

from esl_workers.ivr import ivr


@ivr("conference-pin")
def conference_pin(session):
    room = session.options.get("room", "3000")
    expected = str(session.options.get("pin", ""))
    session.answer()
    for _attempt in range(3):
        pin = session.play_and_get_digits(
            "conference/conf-pin.wav",
            min_digits=1,
            max_digits=8,
            tries=1,
            timeout_ms=10000,
            terminators="#",
            var="fsfarm_conference_pin",
            regex="\\d+",
        )
        if pin and pin == expected:
            session.playback("tone_stream://%(200,0,800)")  # a short beep before joining
            session.conference(room)
            return
        session.playback("conference/conf-bad-pin.wav")
    session.hangup("CALL_REJECTED")
