"""The one error a MIDI reader raises for a file it will not read."""


class MidiRejected(Exception):
    """A file that cannot be read as MIDI. `reason` is a short, stable key
    (counted in manifests); `detail` says what exactly was wrong."""

    def __init__(self, reason: str, detail: str = ""):
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)
