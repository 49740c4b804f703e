"""Message intake: one inbound message read once (message.py) and accepted into the store, or refused (accept.py).

The HTTP edge (service/http/) and the MESH inbox (service/mesh/inbound.py) hand intake a `Submission`; intake
reads it into one `InboundMessage` and hands that to the validator, the national checks and the episode tracker.
"""

from service.intake.accept import Accepted, Freshness, Intake, Submission
from service.intake.message import InboundMessage, read_inbound

__all__ = ["Accepted", "Freshness", "InboundMessage", "Intake", "Submission", "read_inbound"]
