"""An independent witness of the audit log (C2SP tlog-witness), and the log's side of talking to one.

- ``server``: :class:`WitnessServer`, the witness: its own Ed25519 key and state in a
  folder, the ``add-checkpoint`` call over HTTP. It cosigns (``cosignature/v1``) a
  checkpoint only if a trusted log key signed it and it is consistent (RFC 6962 proof)
  with the last checkpoint it cosigned for that origin, so once it has cosigned a tree
  the log can never show it a rolled-back or forked one.
- ``client``: :func:`publish_checkpoint` (push the head's checkpoint to witnesses, store
  their cosignatures), :class:`WitnessPusher` (every N records or T seconds) and
  :func:`fetch_witness_checkpoint` (a witness's latest cosigned checkpoint, for
  ``audit verify --witness``).

The witness imports nothing from the log but the public formats (:mod:`audit.trail.notes`,
:mod:`audit.trail.chain`): it runs as its own process, usually on another machine.
"""

from audit.witness.client import (
    WitnessPusher,
    check_cosignature,
    fetch_witness_checkpoint,
    parse_witness,
    publish_checkpoint,
)
from audit.witness.server import WitnessServer, WitnessState

__all__ = [
    "WitnessPusher",
    "WitnessServer",
    "WitnessState",
    "check_cosignature",
    "fetch_witness_checkpoint",
    "parse_witness",
    "publish_checkpoint",
]
