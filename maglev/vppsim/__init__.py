"""maglev.vppsim: an emulator of VPP 26.10's lb plugin behind VPP's real binary-API socket.

`Emulator(socket_path, clock=...)` serves vpp-papi clients exactly as a VPP would (handshake,
message table, control_ping, lb messages with the plugin's semantics and quirks); `maglev_table`
computes the plugin's weighted Maglev table. Used by tests, by maglevd's `vpp: {api-socket:
embedded}` mode and standalone as `maglev-vppsim --socket PATH`.
"""

from __future__ import annotations

from maglev.table import bucket_counts, ip46, maglev_table
from maglev.vppsim.server import Emulator

__all__ = ["Emulator", "bucket_counts", "ip46", "maglev_table"]
