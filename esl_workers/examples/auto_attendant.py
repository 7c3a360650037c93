"""Auto-attendant: greet, offer a menu, transfer to the chosen extension, repeat on a bad choice.

Options (the Ivr row's ``options``, set through the API) override the defaults, e.g.
``{"menu": {"1": "1001", "2": "1002", "0": "1000"}, "greeting": "ivr/ivr-welcome_to_freeswitch.wav"}``.
"""

from esl_workers.ivr import ivr

DEFAULT_MENU = {"1": "1001", "2": "1002"}


@ivr("main-menu")
def main_menu(session):
    menu = session.options.get("menu", DEFAULT_MENU)
    session.answer()
    session.playback(session.options.get("greeting", "ivr/ivr-welcome_to_freeswitch.wav"))
    for _attempt in range(3):
        choice = session.play_and_get_digits(
            session.options.get("prompt", "ivr/ivr-please_choose_from_the_following.wav"),
            max_digits=1,
            tries=1,
            timeout_ms=5000,
            var="fsfarm_menu_choice",
            regex="\\d",
        )
        if choice in menu:
            session.transfer(menu[choice])
            return
        session.playback("ivr/ivr-that_was_an_invalid_entry.wav")
    session.playback("voicemail/vm-goodbye.wav")
    session.hangup()
