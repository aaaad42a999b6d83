"""The Chatbot webhook URL before the channel exists: a reserved id and secret, sealed in the form.

As in the seed, the creation panel shows the webhook URL before anything is saved, so it can be
pasted into the Omnidesk rules first. Opening the panel takes the next channel id (a counter: an
abandoned panel leaves a gap in the numbering, never a stored half-channel) and draws a secret;
both travel in the form sealed with SECRET_KEY (encrypted and authenticated, so the page holds no
readable secret beyond the URL itself and nobody can choose their own id or secret). Creating the
channel opens the seal; a seal older than `MAX_AGE_S` is refused and the panel draws a new one.
"""

from __future__ import annotations

import time

import msgspec

from omnibot.shared.crypto import SecretBox, SecretKeyError

MAX_AGE_S = 7 * 86400


class Reservation(msgspec.Struct, kw_only=True, frozen=True):
    channel_id: int
    secret: str
    issued_at: float


def seal(box: SecretBox, reservation: Reservation) -> str:
    return box.encrypt(msgspec.json.encode(reservation).decode())


def unseal(box: SecretBox, token: str, *, now: float | None = None) -> Reservation | None:
    if not token or len(token) > 2000:
        return None
    try:
        reservation = msgspec.json.decode(box.decrypt(token), type=Reservation)
    except (SecretKeyError, msgspec.DecodeError, msgspec.ValidationError):
        return None
    if (now if now is not None else time.time()) - reservation.issued_at > MAX_AGE_S:
        return None
    return reservation
