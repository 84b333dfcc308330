"""Dead letters: unusable input kept whole, with why and where (SPEC §1.1)."""
import base64
import json
from dataclasses import dataclass
from typing import Optional

# A dead-letter record fed back as input is recognised by this key and its
# original payload is parsed again (the way to replay dead letters after a fix).
MARKER = "dead_letter_reason"


@dataclass(frozen=True)
class DeadLetter:
    payload: bytes
    reason: str
    error: str
    file: Optional[str] = None
    line: Optional[int] = None
    message_id: Optional[str] = None

    def to_record(self) -> dict:
        record = {MARKER: self.reason, "error": self.error, "source": self.source()}
        try:
            record["payload"] = self.payload.decode("utf-8")
        except UnicodeDecodeError:
            record["payload_base64"] = base64.b64encode(self.payload).decode("ascii")
        return record

    def to_json(self) -> str:
        return json.dumps(self.to_record(), ensure_ascii=False, separators=(",", ":"))

    def source(self) -> dict:
        if self.message_id is not None:
            return {"message_id": self.message_id}
        return {"file": self.file, "line": self.line}

    def attributes(self) -> dict:
        """Pub/Sub attributes of a dead letter published with its original bytes."""
        attributes = {"reason": self.reason, "error": self.error[:1024]}
        attributes.update({k: str(v) for k, v in self.source().items() if v is not None})
        return attributes


def original_payload(record: dict) -> Optional[bytes]:
    """The original bytes of a dead-letter record, or None if it is not one."""
    if not isinstance(record.get(MARKER), str):
        return None
    if isinstance(record.get("payload"), str):
        return record["payload"].encode("utf-8")
    if isinstance(record.get("payload_base64"), str):
        return base64.b64decode(record["payload_base64"])
    return None
