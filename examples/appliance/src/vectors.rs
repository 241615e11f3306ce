//! HAProxy's captured frames (`spop-core/tests/vectors/`, described in its `INDEX.md`), as the
//! build script decoded them from hex. Each is one whole frame, LENGTH included.

macro_rules! vectors {
    ($($(#[$doc:meta])* $name:ident = $file:literal;)*) => {$(
        $(#[$doc])*
        pub static $name: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/vectors/", $file, ".bin"));
    )*};
}

vectors! {
    /// HAPROXY-HELLO of 2.6.12: versions "2.0", max-frame-size 16380, "pipelining,async".
    HAPROXY_HELLO_26 = "haproxy-hello";
    /// HAPROXY-HELLO of 3.1.0: as 2.6 with capabilities "pipelining".
    HAPROXY_HELLO_31 = "v31-haproxy-hello";
    /// HAPROXY-HELLO of 3.4.0.
    HAPROXY_HELLO_34 = "v34-haproxy-hello";
    /// The health-check HAPROXY-HELLO (`option spop-check`), the same in 2.6 and 3.x.
    HAPROXY_HELLO_HEALTHCHECK = "haproxy-hello-healthcheck";
    /// 2.6 NOTIFY 0/1: `check-client-ip("" = IPV4 127.0.0.1)`.
    NOTIFY_IPV4_26 = "notify-ipv4";
    /// 2.6 NOTIFY 2/1: `check-client-ip("" = IPV6 ::1)`.
    NOTIFY_IPV6_26 = "notify-ipv6";
    /// 3.1 NOTIFY 1/1: `check-client-ip("" = IPV4 127.0.0.1)`.
    NOTIFY_IPV4_31 = "v31-notify-ipv4";
    /// 3.1 NOTIFY 3/1: `check-client-ip("" = IPV6 ::1)`.
    NOTIFY_IPV6_31 = "v31-notify-ipv6";
    /// 3.4 NOTIFY 1/1: `check-client-ip("" = IPV4 127.0.0.1)`.
    NOTIFY_IPV4_34 = "v34-notify-ipv4";
    /// 2.6 NOTIFY 0/2 of 502 bytes (`all-types` and `second-msg`, client 127.0.0.1): larger than
    /// a 256-byte max-frame-size.
    NOTIFY_TYPES_IPV4_26 = "notify-types-ipv4";
    /// First fragment (NOTIFY, no FIN) of 2.6's NOTIFY 0/2, client 127.0.0.1.
    NOTIFY_FRAG_1 = "notify-frag-1";
    /// Second fragment (UNSET, no FIN).
    NOTIFY_FRAG_2 = "notify-frag-2";
    /// Last fragment (UNSET, FIN).
    NOTIFY_FRAG_3 = "notify-frag-3";
    /// HAPROXY-DISCONNECT 0 "normal" of 2.6.
    HAPROXY_DISCONNECT_NORMAL = "haproxy-disconnect-normal";
    /// HAPROXY-DISCONNECT 8 "unsupported version" of 3.4.
    HAPROXY_DISCONNECT_BAD_VERSION_34 = "v34-haproxy-disconnect-bad-version";
    /// AGENT-HELLO that HAProxy 2.6 accepted: "2.0", max-frame-size 256,
    /// "pipelining,async,fragmentation".
    AGENT_HELLO_FRAG = "agent-hello-frag";
    /// ACK 0/1 that HAProxy 2.6 accepted: `SET-VAR sess ip_score = INT32 42`.
    ACK_IPV4 = "ack-ipv4";
    /// ACK 2/1, the same action.
    ACK_IPV6 = "ack-ipv6";
    /// AGENT-DISCONNECT 0 "bye".
    AGENT_DISCONNECT_NORMAL = "agent-disconnect-normal";
    /// AGENT-DISCONNECT 99 "agent says goodbye".
    AGENT_DISCONNECT_99 = "agent-disconnect-99";
}

/// The conversation the footprint agent serves: HAProxy 2.6's handshake, NOTIFYs with IPv4 and
/// IPv6 sources, a NOTIFY in three fragments, and its DISCONNECT.
pub static CONVERSATION_26: [&[u8]; 7] = [
    HAPROXY_HELLO_26,
    NOTIFY_IPV4_26,
    NOTIFY_IPV6_26,
    NOTIFY_FRAG_1,
    NOTIFY_FRAG_2,
    NOTIFY_FRAG_3,
    HAPROXY_DISCONNECT_NORMAL,
];

/// A connection that ends on a fault: HAProxy 2.6's handshake, then a frame whose LENGTH (2) is
/// too short for any header. Its AGENT-DISCONNECT formats the deepest message (the conformance
/// run measures every fault), so the footprint agent's stack figure covers the worst case.
pub static CONVERSATION_FAULT: [&[u8]; 2] = [HAPROXY_HELLO_26, &[0, 0, 0, 2, 0, 0]];
