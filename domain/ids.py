"""Id construction, in one place: UUIDs built from an integer without ``uuid.UUID``'s re-checks, and
ids derived from a seed and a counter so a replay with the same seed gets the same ids (pure)."""

from __future__ import annotations

import hashlib
import uuid

__all__ = ["DeterministicIds", "uuid_from_int"]

_new = object.__new__
_set = object.__setattr__
_SAFE_UNKNOWN = uuid.SafeUUID.unknown  # looked up once: an enum member access costs as much as the rest
_UUID = uuid.UUID
_sha1 = hashlib.sha1
_CLEAR_VERSION_VARIANT = ~(0xF << 76) & ~(0xC000 << 48)
_VERSION_5_VARIANT = (5 << 76) | (0x8000 << 48)


def uuid_from_int(value: int) -> uuid.UUID:
    """``uuid.UUID(int=value)`` for a value the caller built as a valid 128-bit UUID, a third of the cost
    (``UUID(int=...)`` re-checks the range and goes through ``__setattr__`` guards)."""
    made = _new(_UUID)
    _set(made, "int", value)
    _set(made, "is_safe", _SAFE_UNKNOWN)
    return made


class DeterministicIds:
    """Ids derived from a seed and a counter: a replay with the same seed gets the same ids."""

    def __init__(self, seed: uuid.UUID):
        self.seed = seed
        self.count = 0
        self._seed_bytes = (seed, seed.bytes)

    def new_id(self) -> uuid.UUID:
        """``uuid.uuid5(seed, str(count))``, built without uuid5's per-call import and UUID checks."""
        return uuid_from_int(self.new_int())

    def new_int(self) -> int:
        """The next id as its 128-bit integer (``new_id().int``, without the UUID object)."""
        self.count += 1
        if self._seed_bytes[0] is not self.seed:
            self._seed_bytes = (self.seed, self.seed.bytes)
        digest = _sha1(self._seed_bytes[1] + str(self.count).encode()).digest()
        return (int.from_bytes(digest[:16], "big") & _CLEAR_VERSION_VARIANT) | _VERSION_5_VARIANT

    def new_ints(self, count: int) -> list[int]:
        """The next ``count`` ids as integers (``new_int`` ``count`` times, in one go)."""
        if self._seed_bytes[0] is not self.seed:
            self._seed_bytes = (self.seed, self.seed.bytes)
        seed, first = self._seed_bytes[1], self.count + 1
        self.count += count
        # the seed's hash state copied for each id (the seed is hashed once); the digest's first 16 of 20 bytes
        from_bytes, copy, out = int.from_bytes, _sha1(seed).copy, []
        append, clear, version = out.append, _CLEAR_VERSION_VARIANT, _VERSION_5_VARIANT
        for n in range(first, first + count):
            h = copy()
            h.update(b"%d" % n)
            append(from_bytes(h.digest(), "big") >> 32 & clear | version)
        return out
