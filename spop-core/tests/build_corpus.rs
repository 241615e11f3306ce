//! Seeds the fuzz corpora (`fuzz/corpus/{decode,engine}/`, gitignored) from the captured vectors.
//! Deterministic: the same files with the same names every time. Run it before fuzzing:
//!
//! ```text
//! cargo test -p spop-core --test build_corpus -- --ignored
//! ```

mod common;

use std::path::Path;

use common::*;

/// Selector bits of the `engine` target (see `fuzz/fuzz_targets/engine.rs`).
const ALL_AT_ONCE: u8 = 0x00;
const ONE_BYTE: u8 = 0x01;
const PREPEND_HELLO: u8 = 0x10;
const VARYING_CHUNKS: u8 = 0x20;
const CAP_256: u8 = 0x40;
const SMALL_OUT: u8 = 0x80;

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap();
}

#[test]
#[ignore = "writes fuzz/corpus/; run explicitly before fuzzing"]
fn build_fuzz_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let decode = root.join("decode");
    let engine = root.join("engine");
    for dir in [&decode, &engine] {
        std::fs::create_dir_all(dir).unwrap();
    }
    let vectors = all_vectors();
    let v = |name: &str| vector(name);

    // decode: every frame alone, a few streams, the reassembled fragment payload.
    for (name, bytes) in &vectors {
        write(
            &decode,
            &format!("vector-{}", name.replace('/', "-")),
            bytes,
        );
    }
    write(
        &decode,
        "stream-hello-notify",
        &cat(&[
            &v("haproxy-hello"),
            &v("notify-ipv4"),
            &v("notify-types-ipv4"),
        ]),
    );
    write(
        &decode,
        "stream-acks",
        &cat(&[&v("ack-actions"), &v("ack-types"), &v("ack-malformed")]),
    );
    let reassembled: Vec<u8> = ["notify-frag-1", "notify-frag-2", "notify-frag-3"]
        .iter()
        .flat_map(|f| one_frame(&v(f)).payload.to_vec())
        .collect();
    write(&decode, "payload-reassembled", &reassembled);
    write(
        &decode,
        "payload-actions",
        one_frame(&v("ack-actions")).payload,
    );

    // engine: a selector byte, then a conversation.
    let session = cat(&[
        &v("haproxy-hello"),
        &v("notify-ipv4"),
        &v("notify-ipv6"),
        &v("notify-types-ipv4"),
        &v("notify-types-ipv6"),
        &v("haproxy-disconnect-normal"),
    ]);
    let v3 = cat(&[
        &v("haproxy-3.x/v31-haproxy-hello"),
        &v("haproxy-3.x/v31-notify-ipv4"),
        &v("haproxy-3.x/v31-notify-ipv6"),
        &v("haproxy-3.x/v34-notify-ipv4"),
    ]);
    let frags = cat(&[
        &v("haproxy-hello"),
        &v("notify-frag-1"),
        &v("notify-frag-2"),
        &v("notify-frag-3"),
        &v("notify-ipv4"),
    ]);
    let aborted = cat(&[
        &v("haproxy-hello"),
        &v("notify-frag-1"),
        &frame(UNSET, FIN | ABORT, 0, 2, b""),
        &v("notify-ipv4"),
    ]);
    let scenarios: Vec<(&str, u8, Vec<u8>)> = vec![
        ("session", ALL_AT_ONCE, session.clone()),
        ("session-bytewise", ONE_BYTE, session.clone()),
        ("session-varying", VARYING_CHUNKS | 0x05, session.clone()),
        ("session-small-out", SMALL_OUT, session),
        ("haproxy-3x", ALL_AT_ONCE, v3),
        ("healthcheck", ALL_AT_ONCE, v("haproxy-hello-healthcheck")),
        ("fragments", CAP_256, frags.clone()),
        ("fragments-bytewise", CAP_256 | ONE_BYTE, frags),
        ("fragments-aborted", CAP_256, aborted),
        (
            "http-request",
            ALL_AT_ONCE,
            b"GET / HTTP/1.1\r\nHost: agent\r\n\r\n".to_vec(),
        ),
        (
            "too-big",
            PREPEND_HELLO,
            cat(&[&v("notify-ipv4"), &hex("00 00 ff ff")]),
        ),
        (
            "hello-no-fin",
            ALL_AT_ONCE,
            frame(
                HAPROXY_HELLO,
                0,
                0,
                0,
                one_frame(&v("haproxy-hello")).payload,
            ),
        ),
        (
            "hello-old-version",
            ALL_AT_ONCE,
            hello_with(b"1.0", 16380, b""),
        ),
        ("unknown-type", PREPEND_HELLO, frame(42, FIN, 1, 1, b"x")),
    ];
    for (name, selector, bytes) in scenarios {
        write(
            &engine,
            &format!("scenario-{name}"),
            &cat(&[&[selector], &bytes]),
        );
    }
    // Each captured frame after a handshake, and alone.
    for (name, bytes) in &vectors {
        let name = name.replace('/', "-");
        write(
            &engine,
            &format!("after-hello-{name}"),
            &cat(&[&[PREPEND_HELLO], bytes]),
        );
        write(
            &engine,
            &format!("alone-{name}"),
            &cat(&[&[ALL_AT_ONCE], bytes]),
        );
    }
    let count = |d: &Path| std::fs::read_dir(d).unwrap().count();
    println!(
        "fuzz corpus: {} decode seeds, {} engine seeds",
        count(&decode),
        count(&engine)
    );
}
