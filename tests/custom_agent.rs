//! The `custom_agent` example on real sockets, on the runtime it picks here: its handler routes
//! by message name, reads typed arguments by name, and answers with set-var and unset-var.
#![allow(clippy::unwrap_used, clippy::expect_used)]

// The example's own source, so what the example shows is what is tested.
#[path = "../examples/custom_agent.rs"]
#[allow(dead_code)] // its `main`
mod custom_agent;

use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr};

use spop_core::{Action, Scope, TypedData};
use spop_testkit::{peer, server};

/// A message's arguments: (name, value) pairs.
type Args = Vec<(&'static [u8], TypedData<'static>)>;

fn set(scope: Scope, name: &'static [u8], value: TypedData<'static>) -> Action<'static> {
    Action::SetVar { scope, name, value }
}

#[test]
fn the_example_agent_answers_each_message_by_name() {
    let agent = custom_agent::bind(server::loopback(1)).unwrap();
    eprintln!("custom_agent on the {} runtime", agent.runtime);
    let stop = agent.stop;
    let serving = std::thread::spawn(agent.serve);

    let ip = |ip: TypedData<'static>| -> Args { vec![(b"ip", ip)] };
    let request = |method: &'static [u8], path: &'static [u8]| -> Args {
        vec![
            (b"method", TypedData::String(method)),
            (b"path", TypedData::String(path)),
        ]
    };
    let score = |n| vec![set(Scope::Session, b"ip_score", TypedData::Int32(n))];
    let v4 = |a, b, c, d| TypedData::Ipv4(Ipv4Addr::new(a, b, c, d));
    let cases: Vec<(&[u8], Args, Vec<Action<'static>>)> = vec![
        (b"check-client-ip", ip(v4(127, 0, 0, 1)), score(0)),
        (b"check-client-ip", ip(v4(10, 1, 2, 3)), score(10)),
        (b"check-client-ip", ip(v4(192, 0, 2, 9)), score(100)),
        (b"check-client-ip", ip(v4(198, 51, 100, 7)), score(50)),
        (
            b"check-client-ip",
            ip(TypedData::Ipv6(Ipv6Addr::LOCALHOST)),
            score(0),
        ),
        // An IPv4 client on an IPv6 listener: HAProxy sends it IPv4-mapped.
        (
            b"check-client-ip",
            ip(TypedData::Ipv6(Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped())),
            score(10),
        ),
        (
            b"check-client-ip",
            ip(TypedData::String(b"10.0.0.1")),
            vec![],
        ),
        (b"check-client-ip", vec![], vec![]),
        (
            b"check-request",
            request(b"GET", b"/admin/users"),
            vec![
                set(Scope::Transaction, b"cacheable", TypedData::Bool(true)),
                set(Scope::Transaction, b"route", TypedData::String(b"admin")),
            ],
        ),
        (
            b"check-request",
            request(b"POST", b"/login"),
            vec![
                set(Scope::Transaction, b"cacheable", TypedData::Bool(false)),
                Action::UnsetVar {
                    scope: Scope::Transaction,
                    name: b"route",
                },
            ],
        ),
        // No path: the rule cannot apply, nothing is set.
        (
            b"check-request",
            vec![(b"method", TypedData::String(b"GET"))],
            vec![],
        ),
        (b"other-message", ip(v4(192, 0, 2, 9)), vec![]),
    ];

    // As HAProxy 3.x, every NOTIFY in one write: the ACKs come back in order.
    let mut s = peer::session_with(agent.addrs[0], &peer::hello_v3(16380));
    let batch: Vec<u8> = (1..)
        .zip(&cases)
        .flat_map(|(stream, (name, args, _))| peer::notify_message(stream, 1, name, args))
        .collect();
    s.write_all(&batch).unwrap();
    for (stream, (name, args, want)) in (1..).zip(&cases) {
        let (h, p) = peer::read_frame(&mut s).expect("ACK");
        peer::assert_ack_of(&h, stream, 1);
        let args: Vec<String> = args
            .iter()
            .map(|(k, v)| format!("{}={v}", String::from_utf8_lossy(k)))
            .collect();
        let message = format!("{} {}", String::from_utf8_lossy(name), args.join(" "));
        assert_eq!(peer::ack_actions(&h, &p), *want, "{message}");
    }

    drop(s);
    stop();
    assert_eq!(serving.join().unwrap().unwrap(), 0, "drained");
}
