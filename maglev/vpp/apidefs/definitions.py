"""The binary-API definitions maglev carries for itself, written as compact Python data.

These are the messages maglev (and its emulator) exchange with VPP 26.10's lb plugin: the memclnt
transport messages, vpe `show_version`, vlib `cli_inband` and every lb message, with the names,
fields, field defaults and CRCs a real VPP 26.10 registers. `maglev.vpp.apidefs` parses this data
into typed definitions and generates `.api.json` files from it for vpp-papi.

Notation (parsed by `maglev.vpp.apidefs.spec`):
- a field list is `;`-separated; each field is `TYPE NAME`, optionally `NAME[N]` (fixed array or
  string length), `NAME[]` (variable length, no length field) or `NAME[LENFIELD]` (variable length
  counted by LENFIELD), then optionally `= DEFAULT` (a Python literal) or `| {OPTIONS}`;
- `@req`, `@rep`, `@det` and `@id` stand for the standard headers
  (`_vl_msg_id, client_index, context`; `_vl_msg_id, context, retval`; `_vl_msg_id, context`;
  `_vl_msg_id`);
- type names other than the base types are API types: `address` means `vl_api_address_t`;
- an enum is `(name, wire type, "NAME=value ...")`;
- a message is `(name, crc, fields)`, listed in the module's definition order, which is the
  order of its message IDs.

Pure data; imported by any thread.
"""

from __future__ import annotations

from typing import Final

# Shared IP types (vnet/ip/ip_types.api, vnet/interface_types.api), inlined into lb.api.json the
# way vppapigen inlines imported types.
IP_ENUMS: Final = (
    ("address_family", "u8", "ADDRESS_IP4=0 ADDRESS_IP6=1"),
    (
        "ip_dscp",
        "u8",
        "IP_API_DSCP_CS0=0 IP_API_DSCP_CS1=8 IP_API_DSCP_AF11=10 IP_API_DSCP_AF12=12 "
        "IP_API_DSCP_AF13=14 IP_API_DSCP_CS2=16 IP_API_DSCP_AF21=18 IP_API_DSCP_AF22=20 "
        "IP_API_DSCP_AF23=22 IP_API_DSCP_CS3=24 IP_API_DSCP_AF31=26 IP_API_DSCP_AF32=28 "
        "IP_API_DSCP_AF33=30 IP_API_DSCP_CS4=32 IP_API_DSCP_AF41=34 IP_API_DSCP_AF42=36 "
        "IP_API_DSCP_AF43=38 IP_API_DSCP_CS5=40 IP_API_DSCP_EF=46 IP_API_DSCP_CS6=48 "
        "IP_API_DSCP_CS7=50",
    ),
    (
        "ip_proto",
        "u8",
        "IP_API_PROTO_HOPOPT=0 IP_API_PROTO_ICMP=1 IP_API_PROTO_IGMP=2 IP_API_PROTO_TCP=6 "
        "IP_API_PROTO_UDP=17 IP_API_PROTO_GRE=47 IP_API_PROTO_ESP=50 IP_API_PROTO_AH=51 "
        "IP_API_PROTO_ICMP6=58 IP_API_PROTO_EIGRP=88 IP_API_PROTO_OSPF=89 IP_API_PROTO_SCTP=132 "
        "IP_API_PROTO_RESERVED=255",
    ),
)
IP_ALIASES: Final = (
    ("ip4_address", "u8", 4),
    ("ip6_address", "u8", 16),
    ("address_with_prefix", "prefix", None),
    ("interface_index", "u32", None),
)
IP_UNIONS: Final = (
    (
        "address_union",
        "ip4_address ip4 | {'case': 'ADDRESS_IP4'}; ip6_address ip6 | {'case': 'ADDRESS_IP6'}",
    ),
)
IP_TYPES: Final = (
    ("address", "address_family af; address_union un | {'discriminator': 'af'}"),
    ("prefix", "address address; u8 len"),
    ("prefix_matcher", "u8 le; u8 ge"),
)

# plugins/lb/lb_types.api
LB_ENUMS: Final = (
    (
        "lb_srv_type",
        "u32",
        "LB_API_SRV_TYPE_CLUSTERIP=0 LB_API_SRV_TYPE_NODEPORT=1 LB_API_SRV_N_TYPES=2",
    ),
    (
        "lb_encap_type",
        "u32",
        "LB_API_ENCAP_TYPE_GRE4=0 LB_API_ENCAP_TYPE_GRE6=1 LB_API_ENCAP_TYPE_L3DSR=2 "
        "LB_API_ENCAP_TYPE_NAT4=3 LB_API_ENCAP_TYPE_NAT6=4 LB_API_ENCAP_N_TYPES=5",
    ),
    (
        "lb_lkp_type_t",
        "u32",
        "LB_API_LKP_SAME_IP_PORT=0 LB_API_LKP_DIFF_IP_PORT=1 LB_API_LKP_ALL_PORT_IP=2 "
        "LB_API_LKP_N_TYPES=3",
    ),
    (
        "lb_vip_type",
        "u32",
        "LB_API_VIP_TYPE_IP6_GRE6=0 LB_API_VIP_TYPE_IP6_GRE4=1 LB_API_VIP_TYPE_IP4_GRE6=2 "
        "LB_API_VIP_TYPE_IP4_GRE4=3 LB_API_VIP_TYPE_IP4_L3DSR=4 LB_API_VIP_TYPE_IP4_NAT4=5 "
        "LB_API_VIP_TYPE_IP6_NAT6=6 LB_API_VIP_N_TYPES=7",
    ),
    (
        "lb_nat_protocol",
        "u32",
        "LB_API_NAT_PROTOCOL_UDP=6 LB_API_NAT_PROTOCOL_TCP=23 LB_API_NAT_PROTOCOL_ANY=4294967295",
    ),
)
LB_TYPES: Final = (("lb_vip", "address_with_prefix pfx; ip_proto protocol; u16 port"),)

_VIP_KEY = "address_with_prefix pfx; u8 protocol = 255; u16 port"
_VIP_ARGS = (
    _VIP_KEY + "; lb_encap_type encap; u8 dscp; lb_srv_type type; u16 target_port; "
    "u16 node_port; u32 new_flows_table_length = 1024"
)

# plugins/lb/lb.api, option version 1.2.0
LB_MESSAGES: Final = (
    (
        "lb_conf",
        "0x56cd3261",
        "@req; ip4_address ip4_src_address; ip6_address ip6_src_address; "
        "u32 sticky_buckets_per_core = 4294967295; u32 flow_timeout = 4294967295",
    ),
    ("lb_conf_reply", "0xe8d4e804", "@rep"),
    ("lb_conf_get", "0x51077d14", "@req"),
    (
        "lb_conf_get_reply",
        "0x923427ac",
        "@rep; ip4_address ip4_src_address; ip6_address ip6_src_address; "
        "u32 sticky_buckets_per_core; u32 flow_timeout",
    ),
    ("lb_add_del_vip", "0x6fa569c7", "@req; " + _VIP_ARGS + "; bool is_del"),
    ("lb_add_del_vip_reply", "0xe8d4e804", "@rep"),
    ("lb_add_del_vip_v2", "0x7c520e0f", "@req; " + _VIP_ARGS + "; bool src_ip_sticky; bool is_del"),
    ("lb_add_del_vip_v2_reply", "0xe8d4e804", "@rep"),
    (
        "lb_add_del_as",
        "0x35d72500",
        "@req; " + _VIP_KEY + "; address as_address; bool is_del; bool is_flush",
    ),
    ("lb_add_del_as_reply", "0xe8d4e804", "@rep"),
    (
        "lb_add_del_as_v2",
        "0x2f1d3b0e",
        "@req; " + _VIP_KEY + "; address as_address; u8 weight = 100; bool is_del; bool is_flush",
    ),
    ("lb_add_del_as_v2_reply", "0xe8d4e804", "@rep"),
    (
        "lb_as_set_weight",
        "0x2d89bdbd",
        "@req; " + _VIP_KEY + "; address as_address; u8 weight; bool is_flush",
    ),
    ("lb_as_set_weight_reply", "0xe8d4e804", "@rep"),
    ("lb_flush_vip", "0x1063f819", "@req; address_with_prefix pfx; u8 protocol; u16 port"),
    ("lb_flush_vip_reply", "0xe8d4e804", "@rep"),
    (
        "lb_vip_dump",
        "0x56110cb7",
        "@req; address_with_prefix pfx; prefix_matcher pfx_matcher; u8 protocol = 255; u16 port",
    ),
    (
        "lb_vip_details",
        "0x1329ec9b",
        "@det; lb_vip vip; lb_encap_type encap; ip_dscp dscp; lb_srv_type srv_type; "
        "u16 target_port; u16 flow_table_length",
    ),
    ("lb_as_dump", "0x1063f819", "@req; address_with_prefix pfx; u8 protocol; u16 port"),
    (
        "lb_as_details",
        "0x8d24c29e",
        "@det; lb_vip vip; address app_srv; u8 flags; u32 in_use_since",
    ),
    ("lb_as_v2_dump", "0x1063f819", "@req; address_with_prefix pfx; u8 protocol; u16 port"),
    (
        "lb_as_v2_details",
        "0x90064aae",
        "@det; lb_vip vip; address app_srv; u8 flags; u32 in_use_since; u8 weight; u32 num_buckets",
    ),
    ("lb_add_del_intf_nat4", "0x47d6e753", "@req; bool is_add; interface_index sw_if_index"),
    ("lb_add_del_intf_nat4_reply", "0xe8d4e804", "@rep"),
    ("lb_add_del_intf_nat6", "0x47d6e753", "@req; bool is_add; interface_index sw_if_index"),
    ("lb_add_del_intf_nat6_reply", "0xe8d4e804", "@rep"),
)
LB_DUMPS: Final = {
    "lb_vip_dump": "lb_vip_details",
    "lb_as_dump": "lb_as_details",
    "lb_as_v2_dump": "lb_as_v2_details",
}

# vlibmemory/memclnt.api, option version 2.1.0: every memclnt message, because their IDs are
# fixed (1..28, in this order) and the handshake's message table lists them all.
MEMCLNT_TYPES: Final = (
    ("module_version", "u32 major; u32 minor; u32 patch; string name[64]"),
    ("message_table_entry", "u16 index; string name[64]"),
)
_CREATE = "u32 context; i32 ctx_quota; u64 input_queue; string name[64]; u32 api_versions[8]"
_CREATE_REPLY = "@det; i32 response; u64 handle; u32 index; u64 message_table"
MEMCLNT_MESSAGES: Final = (
    ("memclnt_create", "0x9c5e1c2f", "@id; " + _CREATE),
    ("memclnt_create_reply", "0x42ec4560", _CREATE_REPLY),
    ("memclnt_delete", "0x7e1c04e3", "@id; u32 index; u64 handle; bool do_cleanup"),
    ("memclnt_delete_reply", "0x3d3b6312", "@id; i32 response; u64 handle"),
    ("rx_thread_exit", "0xc3a3a452", "@id; u8 dummy"),
    ("memclnt_rx_thread_suspend", "0xc3a3a452", "@id; u8 dummy"),
    ("memclnt_read_timeout", "0xc3a3a452", "@id; u8 dummy"),
    (
        "rpc_call",
        "0x7e8a2c95",
        "@req; u64 function; u8 multicast; u8 need_barrier_sync; u8 send_reply; u32 data_len; "
        "u8 data[data_len]",
    ),
    ("rpc_call_reply", "0xe8d4e804", "@rep"),
    ("get_first_msg_id", "0xebf79a66", "@req; string name[64]"),
    ("get_first_msg_id_reply", "0x7d337472", "@rep; u16 first_msg_id"),
    ("api_versions", "0x51077d14", "@req"),
    ("api_versions_reply", "0x5f0d99d6", "@rep; u32 count; module_version api_versions[count]"),
    (
        "trace_plugin_msg_ids",
        "0xf476d3ce",
        "@req; string plugin_name[128]; u16 first_msg_id; u16 last_msg_id",
    ),
    ("sockclnt_create", "0x455fb9c4", "@id; u32 context; string name[64]"),
    (
        "sockclnt_create_reply",
        "0x35166268",
        "@id; u32 client_index; u32 context; i32 response; u32 index; u16 count; "
        "message_table_entry message_table[count]",
    ),
    ("sockclnt_delete", "0x8ac76db6", "@req; u32 index"),
    ("sockclnt_delete_reply", "0x8f38b1ee", "@det; i32 response"),
    ("sock_init_shm", "0x51646d92", "@req; u32 requested_size; u8 nitems; u64 configs[nitems]"),
    ("sock_init_shm_reply", "0xe8d4e804", "@rep"),
    ("memclnt_keepalive", "0x51077d14", "@req"),
    ("memclnt_keepalive_reply", "0xe8d4e804", "@rep"),
    ("control_ping", "0x51077d14", "@req"),
    ("control_ping_reply", "0xf6b0b8ca", "@rep; u32 client_index; u32 vpe_pid"),
    ("memclnt_create_v2", "0xc4bd4882", "@id; " + _CREATE + "; bool keepalive = 'true'"),
    ("memclnt_create_v2_reply", "0x42ec4560", _CREATE_REPLY),
    ("get_api_json", "0x51077d14", "@req"),
    ("get_api_json_reply", "0xea715b59", "@rep; string json[]"),
)
# Requests of memclnt that VPP answers with nothing (services with reply "null").
MEMCLNT_NULL_REPLY: Final = (
    "memclnt_rx_thread_suspend",
    "memclnt_read_timeout",
    "rx_thread_exit",
    "trace_plugin_msg_ids",
)

# vpp/api/vpe.api (option version 1.7.0): only show_version. Messages are (name, crc, fields,
# index within the module) when the module's other messages are not carried.
VPE_MESSAGES: Final = (
    ("show_version", "0x51077d14", "@req"),
    (
        "show_version_reply",
        "0xc919bde1",
        "@rep; string program[32]; string version[32]; string build_date[32]; "
        "string build_directory[256]",
    ),
)
VPE_MSG_COUNT: Final = 6

# vlib/vlib.api (option version 1.0.0): only cli_inband; in the module it follows `cli` and its
# reply follows `cli_reply`, hence the offsets 1 and 3.
VLIB_MESSAGES: Final = (
    ("cli_inband", "0xf8377302", "@req; string cmd[]"),
    ("cli_inband_reply", "0x05879051", "@rep; string reply[]"),
)
VLIB_OFFSETS: Final = (1, 3)
VLIB_MSG_COUNT: Final = 18

# Module identities: (name, version option, vl_api_version of the generated JSON, imports).
MODULE_INFO: Final = {
    "memclnt": ("2.1.0", "0xb197c551", ()),
    "vlib": ("1.0.0", "0x9a9e84e4", ()),
    "vpe": ("1.7.0", "0xbbfa7484", ("vpp/api/vpe_types.api",)),
    "lb": (
        "1.2.0",
        "0xac602d7b",
        ("plugins/lb/lb_types.api", "vnet/ip/ip_types.api", "vnet/interface_types.api"),
    ),
}
# The name under which the lb plugin registers its message-ID range: the C generator's file CRC,
# not the JSON vl_api_version.
LB_RANGE_NAME: Final = "lb_487dee0a"
