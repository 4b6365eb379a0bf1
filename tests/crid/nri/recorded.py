"""Frames a Go NRI plugin sent crid, recorded on the wire.

Recorded with a socket proxy between critest's NRI test stub (containerd/nri
v0.12.1, ttrpc v1.2.7, plugin "cri-test-nri-create" index "00") and crid's
NRI socket, during critest's "should fail CreateContainer when the NRI hook
errors" spec. Each is one multiplexer frame (8-byte header: connection id,
length) holding one ttrpc frame (10-byte header: length, stream id, type,
flags) exactly as Go wrote it.
"""

# conn 2 (Runtime service), stream 1, REQUEST: RegisterPlugin(name, "00", "v0.12.1"),
# timeout 4999992173 ns.
REGISTER_PLUGIN = bytes.fromhex(
    "0000000200000062000000580000000101000a1c6e72692e706b672e6170692e"
    "7631616c706861312e52756e74696d65120e5265676973746572506c7567696e"
    "1a220a136372692d746573742d6e72692d637265617465120230301a0776302e"
    "31322e3120eda697d012"
)
# conn 1 (Plugin service), stream 1, RESPONSE: ConfigureResponse(events=0x62f).
CONFIGURE_REPLY = bytes.fromhex(
    "000000010000000f00000005000000010200120310af0c"
)
# conn 1, stream 7, RESPONSE with status UNKNOWN (2): the plugin's handler error.
ERROR_REPLY = bytes.fromhex(
    "0000000100000033000000290000000702000a2708021223696e647563656420"
    "4e524920437265617465436f6e7461696e6572206661696c757265"
)
