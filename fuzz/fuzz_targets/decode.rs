//! Every decoder on arbitrary bytes: `Frame::decode` (as a stream of frames and as one body),
//! then every typed view of each frame and of the raw input. Besides "no panic", each view that
//! accepts its input must round-trip: what it yields re-encodes to bytes that decode the same,
//! and validated lists walk their whole payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spop_core::hello::offers_version_2;
use spop_core::{
    varint, Ack, Action, Actions, AgentHello, Capabilities, Disconnect, Frame, FrameId,
    HaproxyHello, KvList, Notify, Parsed, Reader, StreamId, TypedData, Writer,
};

fuzz_target!(|data: &[u8]| {
    // As a stream of frames, with and without a LENGTH limit.
    for limit in [u32::MAX, 256] {
        let mut rest = data;
        while let Ok(Parsed::Complete(frame, n)) = Frame::decode(rest, limit) {
            assert!(n >= 4 + 7 && n <= rest.len());
            assert!(n - 4 <= limit as usize);
            frame_views(&frame, n);
            rest = &rest[n..];
        }
    }
    // As the bytes after LENGTH.
    if let Ok(frame) = Frame::decode_body(data) {
        frame_views(&frame, data.len() + 4);
    }
    payload_views(data);
    if let Ok((v, n)) = varint::decode(data) {
        assert_eq!(
            varint::Varint::new(v).as_bytes(),
            &data[..n],
            "varints are canonical"
        );
    }
});

fn frame_views(frame: &Frame<'_>, size: usize) {
    // Re-encoding the frame gives the same frame (varints are canonical, so the same size).
    let mut buf = vec![0u8; size + 32];
    let n = frame.encode(&mut buf, u32::MAX).expect("re-encode frame");
    assert_eq!(n, size);
    assert_eq!(
        Frame::decode(&buf[..n], u32::MAX),
        Ok(Parsed::Complete(*frame, n))
    );
    if let Some(ack) = Ack::from_frame(frame) {
        for action in ack.actions() {
            let _ = action;
        }
    }
    if let Ok(notify) = Notify::from_frame(frame) {
        assert_eq!(notify.stream_id, frame.header.stream_id);
        assert_eq!(notify.frame_id, frame.header.frame_id);
    }
    payload_views(frame.payload);
}

fn payload_views(p: &[u8]) {
    if let Ok(hello) = HaproxyHello::parse(p) {
        if let Some(v) = hello.supported_versions {
            let _ = offers_version_2(v);
        }
        let _ = Capabilities::parse(hello.capabilities.unwrap_or_default());
    }
    let _ = AgentHello::parse(p);
    if let Ok(d) = Disconnect::parse(p) {
        let _ = d.status.message();
    }
    let _ = offers_version_2(p);
    let _ = Capabilities::parse(p);

    if let Ok(list) = KvList::parse(p) {
        let mut buf = vec![0u8; p.len() + 16];
        let mut w = Writer::new(&mut buf);
        let mut narrowed = false;
        for (key, value) in list {
            narrowed |= is_32_bit(&value);
            spop_core::kv::put(&mut w, key, &value).expect("re-encode KV item");
        }
        let n = w.position();
        assert!(n <= p.len());
        if !narrowed {
            assert_eq!(n, p.len(), "a validated KV-LIST is walked whole");
        }
        let again: Vec<_> = KvList::parse(&buf[..n]).expect("re-parse").iter().collect();
        let first: Vec<_> = list.iter().collect();
        assert_eq!(again, first);
    }

    if let Ok(notify) = Notify::parse(StreamId(1), FrameId(1), p) {
        let mut buf = vec![0u8; p.len() + 16];
        let mut w = Writer::new(&mut buf);
        let mut narrowed = false;
        for m in notify.messages() {
            assert_eq!(m.args().count(), usize::from(m.nb_args()));
            w.string(m.name).expect("name");
            w.u8(m.nb_args()).expect("nb-args");
            for a in m.args() {
                narrowed |= is_32_bit(&a.value);
                w.string(a.name).expect("arg name");
                w.typed(&a.value).expect("arg value");
            }
        }
        let n = w.position();
        assert!(n <= p.len());
        if !narrowed {
            assert_eq!(n, p.len(), "a validated NOTIFY is walked whole");
        }
        let again = Notify::parse(StreamId(1), FrameId(1), &buf[..n]).expect("re-parse");
        // Same names and values (type bytes may differ: unused flag bits are not re-sent).
        let view = |n: &Notify<'_>| -> Vec<MessageView> {
            n.messages()
                .map(|m| {
                    let args = m
                        .args()
                        .map(|a| (a.name.to_vec(), format!("{:?}", a.value)));
                    (m.name.to_vec(), args.collect())
                })
                .collect()
        };
        assert_eq!(view(&again), view(&notify));
    }

    let mut errors = 0;
    for action in Actions::new(p) {
        match action {
            Ok(a) => roundtrip_action(&a),
            Err(_) => errors += 1,
        }
    }
    assert!(errors <= 1, "the actions iterator stops at its first error");

    let mut r = Reader::new(p);
    while !r.is_empty() {
        let Ok(value) = r.typed() else { break };
        roundtrip_typed(value);
    }
}

/// A message's name and its (arg name, value) pairs, owned.
type MessageView = (Vec<u8>, Vec<(Vec<u8>, String)>);

/// INT32 and UINT32 keep only the low 32 bits of a wider varint (a known lossy decode, reported):
/// re-encoding such a value is shorter than the original.
fn is_32_bit(value: &TypedData<'_>) -> bool {
    matches!(value, TypedData::Int32(_) | TypedData::Uint32(_))
}

fn roundtrip_typed(value: TypedData<'_>) {
    let mut buf = vec![0u8; 32 + value.as_bytes().map_or(0, <[u8]>::len)];
    let mut w = Writer::new(&mut buf);
    value.encode(&mut w).expect("re-encode value");
    let n = w.position();
    let mut r = Reader::new(&buf[..n]);
    assert_eq!(TypedData::decode(&mut r), Ok(value));
    assert!(r.is_empty());
}

fn roundtrip_action(action: &Action<'_>) {
    let mut buf = vec![0u8; 1024 + 65536];
    let mut w = Writer::new(&mut buf);
    action.encode(&mut w).expect("re-encode action");
    let n = w.position();
    let mut r = Reader::new(&buf[..n]);
    assert_eq!(Action::decode(&mut r).as_ref(), Ok(action));
    assert!(r.is_empty());
}
