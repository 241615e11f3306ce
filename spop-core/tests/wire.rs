//! The wire layer against docs/protocol.md and the frames captured from HAProxy 2.6.12, 3.1.0 and
//! 3.4.0 (`tests/vectors/INDEX.md`): varints, typed data, every HAProxy frame decoded field by
//! field, every agent frame re-encoded byte for byte, and the encoders' and decoder's failure
//! modes.

mod common;

use std::net::{Ipv4Addr, Ipv6Addr};

use common::*;
use spop_core::varint::{self, Varint};
use spop_core::{
    Ack, AckWriter, Action, AgentHello, Arg, DataType, DecodeError, Disconnect, EncodeError, Flags,
    Frame, FrameError, FrameHeader, FrameId, FrameType, HaproxyHello, Notify, NotifyWriter, Parsed,
    Reader, Scope, Status, StreamId, TypedData, Writer,
};

// =============================================================================================
// Varint (docs/protocol.md §2)
// =============================================================================================

/// docs/protocol.md §2, "Worked examples".
const VARINT_EXAMPLES: &[(u64, &str)] = &[
    (0, "00"),
    (42, "2a"),
    (239, "ef"),
    (240, "f0 00"),
    (255, "ff 00"),
    (300, "fc 03"),
    (1000, "f8 2f"),
    (2287, "ff 7f"),
    (2288, "f0 80 00"),
    (16380, "fc f0 06"),
    (u32::MAX as u64, "ff f0 fe fe 7e"),
    (i64::MAX as u64, "ff f0 fe fe fe fe fe fe fe 06"),
    (u64::MAX, "ff f0 fe fe fe fe fe fe fe 0e"),
];

#[test]
fn varint_encodes_the_worked_examples() {
    for &(value, bytes) in VARINT_EXAMPLES {
        assert_eq!(Varint::new(value).as_bytes(), hex(bytes), "encode({value})");
        assert_eq!(varint::encoded_len(value), hex(bytes).len(), "len({value})");
        // The tests' own builder follows the same pseudo-code.
        assert_eq!(common::varint(value), hex(bytes));
    }
}

#[test]
fn varint_decodes_the_worked_examples() {
    for &(value, bytes) in VARINT_EXAMPLES {
        let encoded = hex(bytes);
        assert_eq!(
            varint::decode(&encoded),
            Ok((value, encoded.len())),
            "{bytes}"
        );
        // Bytes after the varint are not read.
        let followed = cat(&[&encoded, &[0xff, 0x00]]);
        assert_eq!(
            varint::decode(&followed),
            Ok((value, encoded.len())),
            "{bytes} + tail"
        );
    }
}

#[test]
fn varint_lengths_change_at_the_documented_boundaries() {
    let ranges: &[(u64, u64, usize)] = &[
        (0, 239, 1),
        (240, 2_287, 2),
        (2_288, 264_431, 3),
        (264_432, 33_818_863, 4),
        (33_818_864, 4_328_786_159, 5),
        (1_161_999_626_690_365_680, u64::MAX, 10),
    ];
    for &(low, high, len) in ranges {
        assert_eq!(varint::encoded_len(low), len, "{low}");
        assert_eq!(varint::encoded_len(high), len, "{high}");
        for v in [low, high] {
            assert_eq!(varint::decode(Varint::new(v).as_bytes()), Ok((v, len)));
        }
    }
    assert_eq!(varint::encoded_len(4_328_786_160), 6);
    assert_eq!(varint::encoded_len(1_161_999_626_690_365_679), 9);
    assert_eq!(varint::MAX_LEN, 10);
}

#[test]
fn varint_2_pow_64_minus_1_is_ten_bytes_both_ways() {
    let max = hex("ff f0 fe fe fe fe fe fe fe 0e");
    assert_eq!(Varint::new(u64::MAX).as_bytes(), max);
    assert_eq!(varint::decode(&max), Ok((u64::MAX, 10)));
}

#[test]
fn varint_with_an_eleventh_byte_is_rejected() {
    // Ten bytes that all say "more follows": no u64 needs an 11th byte.
    let eleven = hex("f0 80 80 80 80 80 80 80 80 80 00");
    assert_eq!(varint::decode(&eleven), Err(DecodeError::VarintTooLong));
    // Known as soon as the 10th byte is seen, whatever follows (or nothing).
    assert_eq!(
        varint::decode(&eleven[..10]),
        Err(DecodeError::VarintTooLong)
    );
    let endless = [0xffu8; 32];
    assert_eq!(varint::decode(&endless), Err(DecodeError::VarintTooLong));
}

#[test]
fn varint_above_u64_max_is_rejected() {
    // 2^64-1 with the last group one higher.
    let over = hex("ff f0 fe fe fe fe fe fe fe 0f");
    assert_eq!(varint::decode(&over), Err(DecodeError::VarintOverflow));
    // The largest tenth byte that is still a final byte.
    let over = hex("ff f0 fe fe fe fe fe fe fe 7f");
    assert_eq!(varint::decode(&over), Err(DecodeError::VarintOverflow));
}

#[test]
fn varint_truncated_is_reported_as_truncated() {
    assert_eq!(varint::decode(&[]), Err(DecodeError::Truncated));
    for &(_, bytes) in VARINT_EXAMPLES {
        let encoded = hex(bytes);
        for cut in 0..encoded.len() {
            assert_eq!(
                varint::decode(&encoded[..cut]),
                Err(DecodeError::Truncated),
                "{bytes} cut at {cut}"
            );
        }
    }
}

// =============================================================================================
// Typed data (docs/protocol.md §3)
// =============================================================================================

fn decode_typed(bytes: &[u8]) -> Result<(TypedData<'_>, usize), DecodeError> {
    let mut r = Reader::new(bytes);
    let value = TypedData::decode(&mut r)?;
    Ok((value, bytes.len() - r.rest().len()))
}

fn encode_typed(value: TypedData<'_>) -> Vec<u8> {
    let mut buf = [0u8; 512];
    let mut w = Writer::new(&mut buf);
    value.encode(&mut w).unwrap();
    let n = w.position();
    buf[..n].to_vec()
}

#[test]
fn typed_data_encodes_each_type_as_spop_md_shows() {
    let cases: &[(TypedData<'_>, &str)] = &[
        (TypedData::Null, "00"),
        (TypedData::Bool(true), "11"),
        (TypedData::Bool(false), "01"),
        (TypedData::Int32(42), "02 2a"),
        // Sign-extended: HAProxy reads every integer type as one signed 64-bit value.
        (TypedData::Int32(-5), "02 fb f0 fe fe fe fe fe fe fe 0e"),
        (
            TypedData::Int32(i32::MIN),
            "02 f0 f1 fe fe be fe fe fe fe 0e",
        ),
        (TypedData::Int32(i32::MAX), "02 ff f0 fe fe 3e"),
        (TypedData::Uint32(u32::MAX), "03 ff f0 fe fe 7e"),
        (TypedData::Uint32(16380), "03 fc f0 06"),
        (TypedData::Int64(-1), "04 ff f0 fe fe fe fe fe fe fe 0e"),
        (TypedData::Int64(1000), "04 f8 2f"),
        (
            TypedData::Uint64(u64::MAX),
            "05 ff f0 fe fe fe fe fe fe fe 0e",
        ),
        (
            TypedData::Ipv4(Ipv4Addr::new(10, 1, 2, 3)),
            "06 0a 01 02 03",
        ),
        (
            TypedData::Ipv6(Ipv6Addr::LOCALHOST),
            "07 00000000000000000000000000000001",
        ),
        (TypedData::String(b""), "08 00"),
        (TypedData::String(b"hello"), "08 05 68656c6c6f"),
        (
            TypedData::Binary(&[0xde, 0xad, 0xbe, 0xef]),
            "09 04 deadbeef",
        ),
    ];
    for &(value, bytes) in cases {
        assert_eq!(encode_typed(value), hex(bytes), "{value}");
        assert_eq!(decode_typed(&hex(bytes)), Ok((value, hex(bytes).len())));
    }
}

#[test]
fn typed_data_int32_wider_than_32_bits_is_refused_not_wrapped() {
    // 2^32 + 7: kept as its low 32 bits it would read as 7.
    assert_eq!(
        decode_typed(&hex("02 f7 f1 fe fe 7e")),
        Err(DecodeError::IntegerOutOfRange(DataType::Int32))
    );
    // The 32-bit pattern of -5 (what the capture sent): 4294967291 is no INT32.
    assert_eq!(
        decode_typed(&hex("02 fb f0 fe fe 7e")),
        Err(DecodeError::IntegerOutOfRange(DataType::Int32))
    );
    // i32::MAX + 1.
    assert_eq!(
        decode_typed(&hex("02 f0 f1 fe fe 3e")),
        Err(DecodeError::IntegerOutOfRange(DataType::Int32))
    );
}

#[test]
fn typed_data_uint32_wider_than_32_bits_is_refused_not_wrapped() {
    assert_eq!(
        decode_typed(&hex("03 f7 f1 fe fe 7e")),
        Err(DecodeError::IntegerOutOfRange(DataType::Uint32))
    );
    // A negative number is no UINT32 either.
    assert_eq!(
        decode_typed(&hex("03 fb f0 fe fe fe fe fe fe fe 0e")),
        Err(DecodeError::IntegerOutOfRange(DataType::Uint32))
    );
}

#[test]
fn typed_data_bool_is_true_only_when_the_flags_nibble_is_exactly_one() {
    assert_eq!(decode_typed(&hex("11")), Ok((TypedData::Bool(true), 1)));
    assert_eq!(decode_typed(&hex("01")), Ok((TypedData::Bool(false), 1)));
    // HAProxy compares the whole flags nibble with 1: 0x31 and 0xF1 are false.
    assert_eq!(decode_typed(&hex("31")), Ok((TypedData::Bool(false), 1)));
    assert_eq!(decode_typed(&hex("f1")), Ok((TypedData::Bool(false), 1)));
}

#[test]
fn a_notify_carrying_an_out_of_range_int32_is_invalid() {
    // NOTIFY 0/1, message "m" with one argument "a" = INT32 2^32+7.
    let payload = hex("01 6d 01 01 61 02 f7 f1 fe fe 7e");
    assert_eq!(
        Notify::parse(StreamId(0), FrameId(1), &payload).map(|_| ()),
        Err(DecodeError::IntegerOutOfRange(DataType::Int32))
    );
}

#[test]
fn ack_writer_refuses_a_max_frame_size_below_its_header() {
    let mut buf = [0u8; 64];
    // The ACK header 0/1 takes 7 bytes of LENGTH.
    assert_eq!(
        AckWriter::new(&mut buf, StreamId(0), FrameId(1), 6).map(|_| ()),
        Err(EncodeError::FrameTooBig { max: 6 })
    );
    let w = AckWriter::new(&mut buf, StreamId(0), FrameId(1), 7).unwrap();
    assert_eq!(w.finish(), 11);
    assert_eq!(buf[..11], hex("00000007 67 00000001 00 01"));
}

#[test]
fn typed_data_reserved_type_ids_10_to_15_are_errors() {
    for t in 10u8..=15 {
        for flags in [0x00u8, 0x10, 0xf0] {
            let bytes = [flags | t, 0x01, 0x02, 0x03];
            assert_eq!(
                decode_typed(&bytes),
                Err(DecodeError::ReservedType(t)),
                "type byte {:#04x}",
                flags | t
            );
        }
    }
}

#[test]
fn typed_data_reserved_type_in_a_notify_makes_it_invalid() {
    let payload = message(b"m", &[(b"x", vec![0x0a, 0x00])]);
    assert_eq!(
        Notify::parse(StreamId(1), FrameId(1), &payload).map(|_| ()),
        Err(DecodeError::ReservedType(10))
    );
}

#[test]
fn typed_data_strings_are_not_utf8_checked() {
    // As captured in notify-types-ipv4 (`x-utf8: caf\xe9`), plus bytes that are never UTF-8.
    assert_eq!(
        decode_typed(&hex("08 04 636166e9")),
        Ok((TypedData::String(b"caf\xe9"), 6))
    );
    assert_eq!(
        decode_typed(&hex("08 03 ff fe 00")),
        Ok((TypedData::String(&[0xff, 0xfe, 0x00]), 5))
    );
    // Message and argument names too.
    let payload = message(b"\xff\xfe", &[(b"\xc3\x28", t_str(b"\x80"))]);
    let notify = Notify::parse(StreamId(0), FrameId(1), &payload).unwrap();
    let m = notify.messages().next().unwrap();
    assert_eq!(m.name, b"\xff\xfe");
    assert_eq!(m.arg(b"\xc3\x28"), Some(TypedData::String(b"\x80")));
}

#[test]
fn typed_data_truncated_values_are_errors() {
    for bytes in [
        "02",
        "04 ff f0",
        "06 7f 00 00",
        "07 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00",
        "08 05 68 65 6c 6c",
        "09 fc 03 00",
    ] {
        assert_eq!(
            decode_typed(&hex(bytes)),
            Err(DecodeError::Truncated),
            "{bytes}"
        );
    }
}

// =============================================================================================
// Frames captured from HAProxy, decoded field by field
// =============================================================================================

fn header(bytes: &[u8]) -> (FrameType, u32, u64, u64) {
    let h = one_frame(bytes).header;
    (h.frame_type, h.flags.0, h.stream_id.0, h.frame_id.0)
}

#[test]
fn haproxy_hello_2_6_decodes_to_its_four_items() {
    let bytes = vector("haproxy-hello");
    assert_eq!(bytes.len(), 133);
    assert_eq!(header(&bytes), (FrameType::HaproxyHello, 1, 0, 0));
    let f = one_frame(&bytes);
    assert_eq!(
        kv_items(f.payload),
        vec![
            (&b"supported-versions"[..], TypedData::String(b"2.0")),
            (b"max-frame-size", TypedData::Uint32(16380)),
            (b"capabilities", TypedData::String(b"pipelining,async")),
            (
                b"engine-id",
                TypedData::String(b"00c6af8f-2e5d-40b6-9651-21edb52e7009")
            ),
        ]
    );
    let hello = HaproxyHello::parse(f.payload).unwrap();
    assert_eq!(
        hello,
        HaproxyHello {
            supported_versions: Some(b"2.0"),
            max_frame_size: Some(16380),
            capabilities: Some(b"pipelining,async"),
            engine_id: Some(b"00c6af8f-2e5d-40b6-9651-21edb52e7009"),
            healthcheck: false,
        }
    );
}

#[test]
fn haproxy_hello_3_1_and_3_4_announce_only_pipelining() {
    for (file, engine_id) in [
        (
            "haproxy-3.x/v31-haproxy-hello",
            &b"0ca819d5-f111-4b68-91f0-511caeb2ff72"[..],
        ),
        (
            "haproxy-3.x/v34-haproxy-hello",
            b"22eb764a-ae80-47ff-a01f-6b99a1982b00",
        ),
    ] {
        let bytes = vector(file);
        assert_eq!(bytes.len(), 127, "{file}");
        assert_eq!(header(&bytes), (FrameType::HaproxyHello, 1, 0, 0), "{file}");
        let f = one_frame(&bytes);
        assert_eq!(
            kv_items(f.payload),
            vec![
                (&b"supported-versions"[..], TypedData::String(b"2.0")),
                (b"max-frame-size", TypedData::Uint32(16380)),
                (b"capabilities", TypedData::String(b"pipelining")),
                (b"engine-id", TypedData::String(engine_id)),
            ],
            "{file}"
        );
    }
}

#[test]
fn haproxy_hello_healthcheck_is_identical_in_2_6_and_3_1() {
    let bytes = vector("haproxy-hello-healthcheck");
    assert_eq!(bytes, vector("haproxy-3.x/v31-haproxy-hello-healthcheck"));
    assert_eq!(bytes.len(), 82);
    assert_eq!(header(&bytes), (FrameType::HaproxyHello, 1, 0, 0));
    let f = one_frame(&bytes);
    assert_eq!(
        kv_items(f.payload),
        vec![
            (&b"supported-versions"[..], TypedData::String(b"2.0")),
            (b"max-frame-size", TypedData::Uint32(16380)),
            (b"capabilities", TypedData::String(b"")),
            (b"healthcheck", TypedData::Bool(true)),
        ]
    );
    let hello = HaproxyHello::parse(f.payload).unwrap();
    assert!(hello.healthcheck);
    assert_eq!(hello.capabilities, Some(&b""[..]));
    assert_eq!(hello.engine_id, None);
}

#[test]
fn haproxy_disconnects_carry_the_status_and_haproxys_text() {
    let cases = [
        ("haproxy-disconnect-normal", 0, "normal"),
        ("haproxy-disconnect-timeout", 2, "a timeout occurred"),
        ("haproxy-disconnect-too-big", 3, "frame is too big"),
        ("haproxy-disconnect-invalid", 4, "invalid frame received"),
        (
            "haproxy-disconnect-no-version",
            5,
            "version value not found",
        ),
        (
            "haproxy-disconnect-no-max-frame-size",
            6,
            "max-frame-size value not found",
        ),
        ("haproxy-disconnect-bad-version", 8, "unsupported version"),
        (
            "haproxy-3.x/v34-haproxy-disconnect-bad-version",
            8,
            "unsupported version",
        ),
        (
            "haproxy-disconnect-bad-frame-size",
            9,
            "max-frame-size too big or too small",
        ),
        (
            "haproxy-disconnect-frag-not-supported",
            10,
            "fragmentation not supported",
        ),
    ];
    for (file, code, text) in cases {
        let bytes = vector(file);
        assert_eq!(
            header(&bytes),
            (FrameType::HaproxyDisconnect, 1, 0, 0),
            "{file}"
        );
        let f = one_frame(&bytes);
        assert_eq!(
            kv_items(f.payload),
            vec![
                (&b"status-code"[..], TypedData::Uint32(code)),
                (b"message", TypedData::String(text.as_bytes())),
            ],
            "{file}"
        );
        let d = Disconnect::parse(f.payload).unwrap();
        assert_eq!(d.status, Status::from_code(code), "{file}");
        assert_eq!(d.status.code(), code, "{file}");
        assert_eq!(d.message, text.as_bytes(), "{file}");
        // Our status table has HAProxy's own text for the code.
        assert_eq!(d.status.message(), text, "{file}");
    }
}

/// (name, value) of every argument of one message.
fn args_of<'a>(notify: &Notify<'a>, message: usize) -> (Vec<u8>, Vec<(&'a [u8], TypedData<'a>)>) {
    let m = notify.messages().nth(message).unwrap();
    let args: Vec<_> = m.args().map(|a| (a.name, a.value)).collect();
    assert_eq!(args.len(), usize::from(m.nb_args()));
    (m.name.to_vec(), args)
}

#[test]
fn notify_ipv4_carries_check_client_ip_with_one_unnamed_ipv4() {
    for (file, ids) in [
        ("notify-ipv4", (0, 1)),
        ("haproxy-3.x/v31-notify-ipv4", (1, 1)),
        ("haproxy-3.x/v34-notify-ipv4", (1, 1)),
    ] {
        let bytes = vector(file);
        assert_eq!(bytes.len(), 34, "{file}");
        assert_eq!(
            header(&bytes),
            (FrameType::Notify, 1, ids.0, ids.1),
            "{file}"
        );
        let notify = Notify::from_frame(&one_frame(&bytes)).unwrap();
        assert_eq!((notify.stream_id.0, notify.frame_id.0), ids, "{file}");
        assert_eq!(notify.messages().count(), 1, "{file}");
        assert_eq!(
            args_of(&notify, 0),
            (
                b"check-client-ip".to_vec(),
                vec![(&b""[..], TypedData::Ipv4(Ipv4Addr::new(127, 0, 0, 1)))]
            ),
            "{file}"
        );
    }
}

#[test]
fn notify_ipv6_carries_check_client_ip_with_one_unnamed_ipv6() {
    for (file, ids) in [
        ("notify-ipv6", (2, 1)),
        ("haproxy-3.x/v31-notify-ipv6", (3, 1)),
    ] {
        let bytes = vector(file);
        assert_eq!(bytes.len(), 46, "{file}");
        assert_eq!(
            header(&bytes),
            (FrameType::Notify, 1, ids.0, ids.1),
            "{file}"
        );
        let notify = Notify::from_frame(&one_frame(&bytes)).unwrap();
        assert_eq!(
            args_of(&notify, 0),
            (
                b"check-client-ip".to_vec(),
                vec![(&b""[..], TypedData::Ipv6(Ipv6Addr::LOCALHOST))]
            ),
            "{file}"
        );
    }
}

/// The 17 arguments of `all-types` (spoe-types.conf).
fn all_types<'a>(
    client: TypedData<'a>,
    port: i64,
    long: &'a [u8],
    utf8: TypedData<'a>,
) -> Vec<(&'a [u8], TypedData<'a>)> {
    vec![
        (b"", client),
        (b"ip", client),
        (b"port", TypedData::Int64(port)),
        (b"int", TypedData::Int64(42)),
        (b"neg", TypedData::Int64(-1)),
        (b"big", TypedData::Int64(1000)),
        (b"max", TypedData::Int64(i64::MAX)),
        (b"t", TypedData::Bool(true)),
        (b"f", TypedData::Bool(false)),
        (b"str", TypedData::String(b"hello")),
        (b"bin", TypedData::Binary(&[0xde, 0xad, 0xbe, 0xef])),
        (b"v4", TypedData::Ipv4(Ipv4Addr::new(192, 0, 2, 1))),
        (
            b"v6",
            TypedData::Ipv6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
        ),
        (b"missing", TypedData::Null),
        (b"meth", TypedData::String(b"GET")),
        (b"long", TypedData::String(long)),
        (b"utf8", utf8),
    ]
}

fn second_msg() -> (Vec<u8>, Vec<(&'static [u8], TypedData<'static>)>) {
    (
        b"second-msg".to_vec(),
        vec![(&b"ver"[..], TypedData::String(b"1.1"))],
    )
}

#[test]
fn notify_types_ipv4_decodes_to_all_types_and_second_msg() {
    let bytes = vector("notify-types-ipv4");
    assert_eq!(bytes.len(), 502);
    assert_eq!(header(&bytes), (FrameType::Notify, 1, 0, 2));
    let notify = Notify::from_frame(&one_frame(&bytes)).unwrap();
    assert_eq!(notify.messages().count(), 2);
    let long = [b'a'; 300];
    assert_eq!(
        args_of(&notify, 0),
        (
            b"all-types".to_vec(),
            all_types(
                TypedData::Ipv4(Ipv4Addr::LOCALHOST),
                36982,
                &long,
                TypedData::String(b"caf\xe9"),
            )
        )
    );
    assert_eq!(args_of(&notify, 1), second_msg());
}

#[test]
fn notify_types_ipv6_decodes_to_all_types_and_second_msg() {
    let bytes = vector("notify-types-ipv6");
    assert_eq!(bytes.len(), 221);
    assert_eq!(header(&bytes), (FrameType::Notify, 1, 2, 2));
    let notify = Notify::from_frame(&one_frame(&bytes)).unwrap();
    assert_eq!(notify.messages().count(), 2);
    assert_eq!(
        args_of(&notify, 0),
        (
            b"all-types".to_vec(),
            all_types(
                TypedData::Ipv6(Ipv6Addr::LOCALHOST),
                40110,
                b"b",
                TypedData::Null
            )
        )
    );
    assert_eq!(args_of(&notify, 1), second_msg());
}

fn types_ipv4_arg(name: &[u8]) -> (TypedData<'static>, Vec<u8>) {
    // Leak the vector so the borrowed value can be returned; tests only.
    let bytes: &'static [u8] = Vec::leak(vector("notify-types-ipv4"));
    let notify = Notify::from_frame(&one_frame(bytes)).unwrap();
    let value = notify.messages().next().unwrap().arg(name).unwrap();
    (value, encode_typed(value))
}

#[test]
fn notify_int64_minus_one_is_a_ten_byte_varint() {
    let (value, bytes) = types_ipv4_arg(b"neg");
    assert_eq!(value, TypedData::Int64(-1));
    assert_eq!(bytes, hex("04 ff f0 fe fe fe fe fe fe fe 0e"));
    assert_eq!(value.as_u64(), Some(u64::MAX));
}

#[test]
fn notify_300_byte_string_has_a_two_byte_length() {
    let (value, bytes) = types_ipv4_arg(b"long");
    assert_eq!(value, TypedData::String(&[b'a'; 300]));
    assert_eq!(bytes[..3], hex("08 fc 03"));
}

#[test]
fn notify_non_utf8_header_byte_is_passed_raw() {
    let (value, _) = types_ipv4_arg(b"utf8");
    assert_eq!(value, TypedData::String(&[b'c', b'a', b'f', 0xe9]));
}

#[test]
fn notify_absent_header_is_null() {
    assert_eq!(types_ipv4_arg(b"missing"), (TypedData::Null, vec![0x00]));
}

#[test]
fn notify_booleans_use_the_flag_bit() {
    assert_eq!(types_ipv4_arg(b"t"), (TypedData::Bool(true), vec![0x11]));
    assert_eq!(types_ipv4_arg(b"f"), (TypedData::Bool(false), vec![0x01]));
}

#[test]
fn notify_ipv6_argument_is_sixteen_bytes() {
    let (value, bytes) = types_ipv4_arg(b"v6");
    assert_eq!(
        value,
        TypedData::Ipv6("2001:db8::1".parse::<Ipv6Addr>().unwrap())
    );
    assert_eq!(bytes, hex("07 20010db8000000000000000000000001"));
}

#[test]
fn notify_reencoding_every_message_reproduces_haproxys_payload() {
    for file in [
        "notify-ipv4",
        "notify-ipv6",
        "notify-types-ipv4",
        "notify-types-ipv6",
        "haproxy-3.x/v31-notify-ipv6",
    ] {
        let bytes = vector(file);
        let f = one_frame(&bytes);
        let notify = Notify::from_frame(&f).unwrap();
        let mut buf = vec![0u8; 1024];
        let mut w = Writer::new(&mut buf);
        for m in notify.messages() {
            w.string(m.name).unwrap();
            w.u8(m.nb_args()).unwrap();
            for a in m.args() {
                w.string(a.name).unwrap();
                w.typed(&a.value).unwrap();
            }
        }
        let n = w.position();
        assert_eq!(&buf[..n], f.payload, "{file}");
    }
}

#[test]
fn notify_fragments_decode_to_their_headers() {
    let cases = [
        ("notify-frag-1", FrameType::Notify, 0, 224),
        ("notify-frag-2", FrameType::Unset, 0, 224),
        ("notify-frag-3", FrameType::Unset, 1, 38),
    ];
    for (file, frame_type, flags, payload_len) in cases {
        let bytes = vector(file);
        assert_eq!(header(&bytes), (frame_type, flags, 0, 2), "{file}");
        assert_eq!(one_frame(&bytes).payload.len(), payload_len, "{file}");
    }
    // The first fragment alone is not a LIST-OF-MESSAGES: it ends inside the 300-byte string.
    let first = vector("notify-frag-1");
    assert_eq!(
        Notify::from_frame(&one_frame(&first)).map(|_| ()),
        Err(DecodeError::Truncated)
    );
}

#[test]
fn notify_fragments_concatenated_are_one_list_of_messages() {
    let payload: Vec<u8> = ["notify-frag-1", "notify-frag-2", "notify-frag-3"]
        .iter()
        .flat_map(|file| one_frame(&vector(file)).payload.to_vec())
        .collect();
    assert_eq!(payload.len(), 486);
    let notify = Notify::parse(StreamId(0), FrameId(2), &payload).unwrap();
    let long = [b'a'; 300];
    assert_eq!(
        args_of(&notify, 0),
        (
            b"all-types".to_vec(),
            all_types(
                TypedData::Ipv4(Ipv4Addr::LOCALHOST),
                50138,
                &long,
                TypedData::Null
            )
        )
    );
    assert_eq!(args_of(&notify, 1), second_msg());
}

#[test]
fn every_vector_decodes_as_exactly_one_frame() {
    let all = all_vectors();
    assert_eq!(all.len(), 39, "vectors/ holds 31 + 8 frames");
    for (name, bytes) in all {
        match Frame::decode(&bytes, u32::MAX) {
            Ok(Parsed::Complete(_, n)) => assert_eq!(n, bytes.len(), "{name}"),
            other => panic!("{name}: {other:?}"),
        }
    }
}

// =============================================================================================
// Agent frames: our encoders produce the captured bytes exactly
// =============================================================================================

fn encoded(f: impl FnOnce(&mut [u8]) -> Result<usize, EncodeError>) -> Vec<u8> {
    let mut buf = vec![0u8; 65536];
    let n = f(&mut buf).unwrap();
    buf.truncate(n);
    buf
}

#[test]
fn agent_hello_encodes_byte_for_byte() {
    let hello = AgentHello {
        version: b"2.0",
        max_frame_size: 16380,
        capabilities: Some(b"pipelining,async"),
    };
    assert_eq!(encoded(|b| hello.encode(b)), vector("agent-hello"));
    assert_eq!(
        AgentHello::parse(one_frame(&vector("agent-hello")).payload),
        Ok(hello)
    );
}

#[test]
fn agent_hello_with_fragmentation_encodes_byte_for_byte() {
    let hello = AgentHello {
        version: b"2.0",
        max_frame_size: 256,
        capabilities: Some(b"pipelining,async,fragmentation"),
    };
    assert_eq!(encoded(|b| hello.encode(b)), vector("agent-hello-frag"));
}

#[test]
fn agent_hello_without_capabilities_encodes_byte_for_byte() {
    let hello = AgentHello {
        version: b"2.0",
        max_frame_size: 16380,
        capabilities: None,
    };
    assert_eq!(encoded(|b| hello.encode(b)), vector("agent-hello-no-caps"));
    assert_eq!(
        AgentHello::parse(one_frame(&vector("agent-hello-no-caps")).payload),
        Ok(hello)
    );
}

#[test]
fn agent_disconnect_normal_encodes_byte_for_byte() {
    let d = Disconnect {
        status: Status::Normal,
        message: b"bye",
    };
    assert_eq!(
        encoded(|b| d.encode(b, 16380)),
        vector("agent-disconnect-normal")
    );
    assert_eq!(disconnect_status(&vector("agent-disconnect-normal")), 0);
}

#[test]
fn agent_disconnect_99_encodes_byte_for_byte() {
    let d = Disconnect {
        status: Status::from_code(99),
        message: b"agent says goodbye",
    };
    assert_eq!(d.status, Status::Unknown);
    assert_eq!(
        encoded(|b| d.encode(b, 16380)),
        vector("agent-disconnect-99")
    );
    let bytes = vector("agent-disconnect-99");
    let parsed = Disconnect::parse(one_frame(&bytes).payload).unwrap();
    assert_eq!(parsed, d);
}

#[test]
fn agent_disconnect_message_is_cut_to_255_bytes() {
    let long = [b'x'; 400];
    let d = Disconnect {
        status: Status::Other(1000),
        message: &long,
    };
    let bytes = encoded(|b| d.encode(b, 16380));
    let parsed = Disconnect::parse(one_frame(&bytes).payload).unwrap();
    assert_eq!(parsed.message, &long[..255]);
    assert_eq!(parsed.status, Status::Other(1000));
}

fn ack(stream: u64, frame: u64, actions: &[Action<'_>]) -> Vec<u8> {
    let mut buf = vec![0u8; 1024];
    let mut w = AckWriter::new(&mut buf, StreamId(stream), FrameId(frame), 16380).unwrap();
    for a in actions {
        w.push(a).unwrap();
    }
    assert_eq!(w.len(), actions.len());
    let n = w.finish();
    buf.truncate(n);
    buf
}

const IP_SCORE_42: Action<'static> = Action::SetVar {
    scope: Scope::Session,
    name: b"ip_score",
    value: TypedData::Int32(42),
};

#[test]
fn ack_ipv4_ipv6_and_3_1_encode_byte_for_byte() {
    for (file, ids) in [
        ("ack-ipv4", (0, 1)),
        ("ack-ipv6", (2, 1)),
        ("haproxy-3.x/v31-ack-ipv4", (1, 1)),
    ] {
        let mut buf = vec![0u8; 64];
        let mut w = AckWriter::new(&mut buf, StreamId(ids.0), FrameId(ids.1), 16380).unwrap();
        assert!(w.is_empty());
        w.set_var(Scope::Session, b"ip_score", TypedData::Int32(42))
            .unwrap();
        let n = w.finish();
        assert_eq!(buf[..n], vector(file), "{file}");
    }
}

#[test]
fn ack_empty_encodes_byte_for_byte() {
    assert_eq!(ack(0, 1, &[]), vector("ack-empty"));
}

#[test]
fn ack_frag_encodes_byte_for_byte() {
    assert_eq!(ack(0, 2, &[IP_SCORE_42, IP_SCORE_42]), vector("ack-frag"));
}

#[test]
fn ack_types_encodes_byte_for_byte() {
    let actions = [
        IP_SCORE_42,
        IP_SCORE_42,
        Action::SetVar {
            scope: Scope::Transaction,
            name: b"s",
            value: TypedData::String(b"hello"),
        },
        Action::SetVar {
            scope: Scope::Transaction,
            name: b"u",
            value: TypedData::Uint64(u64::MAX),
        },
        Action::SetVar {
            scope: Scope::Transaction,
            name: b"b",
            value: TypedData::Bool(true),
        },
        Action::SetVar {
            scope: Scope::Transaction,
            name: b"ip",
            value: TypedData::Ipv4(Ipv4Addr::new(10, 1, 2, 3)),
        },
    ];
    assert_eq!(ack(0, 2, &actions), vector("ack-types"));
}

fn ack_actions_list() -> Vec<Action<'static>> {
    let txn = |name: &'static [u8], value| Action::SetVar {
        scope: Scope::Transaction,
        name,
        value,
    };
    vec![
        Action::SetVar {
            scope: Scope::Session,
            name: b"ip_score",
            value: TypedData::Int32(7),
        },
        txn(b"a", TypedData::String(b"x")),
        Action::UnsetVar {
            scope: Scope::Transaction,
            name: b"a",
        },
        txn(b"n", TypedData::String(b"y")),
        txn(b"n", TypedData::Null),
        txn(b"bad-name!", TypedData::String(b"q")),
        Action::SetVar {
            scope: Scope::Process,
            name: b"p",
            value: TypedData::Int64(5),
        },
        txn(b"neg64", TypedData::Int64(-5)),
        txn(b"neg32", TypedData::Int32(-5)),
        txn(b"u32", TypedData::Uint32(u32::MAX)),
        txn(b"bin", TypedData::Binary(&[0x00, 0x01, 0x61, 0x62])),
        txn(
            b"v6",
            TypedData::Ipv6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x42)),
        ),
        Action::SetVar {
            scope: Scope::Unknown(9),
            name: b"badscope",
            value: TypedData::String(b"w"),
        },
        txn(b"after", TypedData::String(b"z")),
    ]
}

#[test]
fn ack_actions_with_every_kind_of_action_encodes_byte_for_byte() {
    let actions = ack_actions_list();
    let mut buf = vec![0u8; 1024];
    let mut w = AckWriter::new(&mut buf, StreamId(0), FrameId(1), 16380).unwrap();
    for a in &actions {
        match *a {
            Action::SetVar { scope, name, value } => w.set_var(scope, name, value).unwrap(),
            Action::UnsetVar { scope, name } => w.unset_var(scope, name).unwrap(),
        }
    }
    assert_eq!(w.len(), 14);
    let n = w.finish();
    assert_eq!(buf[..n], vector("ack-actions"));
}

#[test]
fn ack_actions_decodes_back_to_the_same_actions() {
    let bytes = vector("ack-actions");
    let f = one_frame(&bytes);
    let ack = Ack::from_frame(&f).unwrap();
    assert_eq!(ack.header, ack_header(0, 1, Flags::FIN));
    let decoded: Vec<_> = ack.actions().collect::<Result<_, _>>().unwrap();
    assert_eq!(decoded, ack_actions_list());
}

fn ack_header(stream: u64, frame: u64, flags: Flags) -> FrameHeader {
    FrameHeader {
        frame_type: FrameType::Ack,
        flags,
        stream_id: StreamId(stream),
        frame_id: FrameId(frame),
    }
}

#[test]
fn ack_malformed_encodes_from_a_raw_payload() {
    // SET-VAR, 3 args, session, then a name whose length (0x40) runs past the frame's end.
    let payload = hex("01 03 01 40 69705f73636f7265");
    let f = Frame {
        header: ack_header(0, 1, Flags::FIN),
        payload: &payload,
    };
    assert_eq!(encoded(|b| f.encode(b, 16380)), vector("ack-malformed"));
    // Decoding stops at the bad action, as HAProxy does.
    let bytes = vector("ack-malformed");
    let frame = one_frame(&bytes);
    let actions: Vec<_> = Ack::from_frame(&frame).unwrap().actions().collect();
    assert_eq!(actions, vec![Err(DecodeError::Truncated)]);
}

#[test]
fn ack_nofin_encodes_with_flags_none() {
    let mut payload = [0u8; 64];
    let mut w = Writer::new(&mut payload);
    IP_SCORE_42.encode(&mut w).unwrap();
    let n = w.position();
    let f = Frame {
        header: ack_header(0, 1, Flags::NONE),
        payload: &payload[..n],
    };
    assert_eq!(encoded(|b| f.encode(b, 16380)), vector("ack-nofin"));
    assert!(!one_frame(&vector("ack-nofin")).header.flags.is_fin());
}

#[test]
fn ack_from_frame_refuses_other_frame_types() {
    let bytes = vector("notify-ipv4");
    assert_eq!(Ack::from_frame(&one_frame(&bytes)), None);
}

#[test]
fn actions_decoder_stops_at_unknown_action_and_bad_nb_args() {
    let cases: &[(&str, DecodeError)] = &[
        ("03 00", DecodeError::UnknownAction(3)),
        (
            "01 02 01 01 61",
            DecodeError::ActionArgs {
                action: 1,
                nb_args: 2,
            },
        ),
        (
            "02 03 01 01 61 00",
            DecodeError::ActionArgs {
                action: 2,
                nb_args: 3,
            },
        ),
    ];
    for &(bytes, error) in cases {
        // A good action first, then the bad one, then a good one never reached.
        let payload = cat(&[&hex("02 02 01 01 61"), &hex(bytes), &hex("02 02 01 01 62")]);
        let actions: Vec<_> = spop_core::Actions::new(&payload).collect();
        assert_eq!(
            actions,
            vec![
                Ok(Action::UnsetVar {
                    scope: Scope::Session,
                    name: b"a"
                }),
                Err(error)
            ],
            "{bytes}"
        );
    }
}

// =============================================================================================
// Encoders' limits
// =============================================================================================

#[test]
fn ack_writer_accepts_an_action_that_fills_max_frame_size_exactly() {
    // Header: type + flags + two 1-byte ids = 7. SET-VAR "x" STRING(241) = 3 + 2 + 1 + 2 + 241.
    let value = [b'v'; 241];
    let mut buf = vec![0u8; 1024];
    let mut w = AckWriter::new(&mut buf, StreamId(0), FrameId(1), 256).unwrap();
    w.set_var(Scope::Session, b"x", TypedData::String(&value))
        .unwrap();
    let n = w.finish();
    assert_eq!(n, 4 + 256);
    assert_eq!(buf[..4], 256u32.to_be_bytes());
}

#[test]
fn ack_writer_refuses_an_action_over_max_frame_size_and_keeps_a_valid_frame() {
    let big = [b'v'; 242]; // one byte more than fits in 256
    let mut buf = vec![0xAAu8; 1024];
    let mut w = AckWriter::new(&mut buf, StreamId(7), FrameId(3), 256).unwrap();
    w.set_var(Scope::Session, b"first", TypedData::Int32(1))
        .unwrap();
    assert_eq!(
        w.set_var(Scope::Session, b"x", TypedData::String(&big)),
        Err(EncodeError::FrameTooBig { max: 256 })
    );
    assert_eq!(
        w.unset_var(Scope::Session, &[b'n'; 300]),
        Err(EncodeError::FrameTooBig { max: 256 })
    );
    assert_eq!(w.len(), 1, "refused actions are not counted");
    // Later actions that fit are still accepted.
    w.unset_var(Scope::Request, b"last").unwrap();
    let n = w.finish();
    let f = one_frame(&buf[..n]);
    assert!(n - 4 <= 256);
    assert_eq!(f.header, ack_header(7, 3, Flags::FIN));
    let actions: Vec<_> = Ack::from_frame(&f).unwrap().actions().collect();
    assert_eq!(
        actions,
        vec![
            Ok(Action::SetVar {
                scope: Scope::Session,
                name: b"first",
                value: TypedData::Int32(1)
            }),
            Ok(Action::UnsetVar {
                scope: Scope::Request,
                name: b"last"
            }),
        ]
    );
}

#[test]
fn ack_writer_refuses_an_action_over_the_buffer_and_keeps_a_valid_frame() {
    let mut buf = vec![0u8; 40];
    let mut w = AckWriter::new(&mut buf, StreamId(0), FrameId(1), 16380).unwrap();
    w.set_var(Scope::Session, b"ip_score", TypedData::Int32(42))
        .unwrap(); // 25 bytes so far
    assert_eq!(
        w.set_var(
            Scope::Session,
            b"ip_score",
            TypedData::String(b"0123456789")
        ),
        Err(EncodeError::BufferTooSmall)
    );
    let n = w.finish();
    assert_eq!(buf[..n], vector("ack-ipv4"));
}

/// Encodes one agent frame into a buffer of `len` bytes.
type AgentEncoder = Box<dyn Fn(&mut [u8]) -> Result<usize, EncodeError>>;

fn agent_encoders() -> Vec<(&'static str, AgentEncoder)> {
    let ack_of = |ids: (u64, u64), actions: Vec<Action<'static>>| -> AgentEncoder {
        Box::new(move |buf: &mut [u8]| {
            let mut w = AckWriter::new(buf, StreamId(ids.0), FrameId(ids.1), 16380)?;
            for a in &actions {
                w.push(a)?;
            }
            Ok(w.finish())
        })
    };
    vec![
        (
            "agent-hello",
            Box::new(|b: &mut [u8]| {
                AgentHello {
                    version: b"2.0",
                    max_frame_size: 16380,
                    capabilities: Some(b"pipelining,async"),
                }
                .encode(b)
            }),
        ),
        (
            "agent-hello-frag",
            Box::new(|b: &mut [u8]| {
                AgentHello {
                    version: b"2.0",
                    max_frame_size: 256,
                    capabilities: Some(b"pipelining,async,fragmentation"),
                }
                .encode(b)
            }),
        ),
        (
            "agent-hello-no-caps",
            Box::new(|b: &mut [u8]| {
                AgentHello {
                    version: b"2.0",
                    max_frame_size: 16380,
                    capabilities: None,
                }
                .encode(b)
            }),
        ),
        (
            "agent-disconnect-normal",
            Box::new(|b: &mut [u8]| {
                Disconnect {
                    status: Status::Normal,
                    message: b"bye",
                }
                .encode(b, 16380)
            }),
        ),
        (
            "agent-disconnect-99",
            Box::new(|b: &mut [u8]| {
                Disconnect {
                    status: Status::Unknown,
                    message: b"agent says goodbye",
                }
                .encode(b, 16380)
            }),
        ),
        ("ack-ipv4", ack_of((0, 1), vec![IP_SCORE_42])),
        ("ack-ipv6", ack_of((2, 1), vec![IP_SCORE_42])),
        ("ack-empty", ack_of((0, 1), vec![])),
        ("ack-frag", ack_of((0, 2), vec![IP_SCORE_42, IP_SCORE_42])),
        ("ack-actions", ack_of((0, 1), ack_actions_list())),
        (
            "ack-malformed",
            Box::new(|b: &mut [u8]| {
                let payload = hex("01 03 01 40 69705f73636f7265");
                Frame {
                    header: ack_header(0, 1, Flags::FIN),
                    payload: &payload,
                }
                .encode(b, 16380)
            }),
        ),
        (
            "ack-nofin",
            Box::new(|b: &mut [u8]| {
                let payload = hex("01 03 01 08 69705f73636f7265 02 2a");
                Frame {
                    header: ack_header(0, 1, Flags::NONE),
                    payload: &payload,
                }
                .encode(b, 16380)
            }),
        ),
    ]
}

#[test]
fn encoders_fail_cleanly_on_every_buffer_length() {
    for (file, encode) in agent_encoders() {
        let expected = vector(file);
        for len in 0..=expected.len() + 2 {
            let mut buf = vec![0xAAu8; len];
            match encode(&mut buf) {
                Ok(n) => {
                    assert!(len >= expected.len(), "{file}: Ok({n}) in {len} bytes");
                    assert_eq!(buf[..n], expected, "{file} in {len} bytes");
                }
                Err(e) => {
                    assert!(len < expected.len(), "{file}: {e} in {len} bytes");
                    assert_eq!(e, EncodeError::BufferTooSmall, "{file} in {len} bytes");
                }
            }
        }
    }
}

#[test]
fn ack_writer_in_a_short_buffer_always_finishes_a_valid_ack() {
    let expected = vector("ack-actions");
    let actions = ack_actions_list();
    for len in 11..expected.len() {
        let mut buf = vec![0xAAu8; len];
        let mut w = AckWriter::new(&mut buf, StreamId(0), FrameId(1), 16380).unwrap();
        let accepted: Vec<_> = actions.iter().filter(|a| w.push(a).is_ok()).collect();
        let n = w.finish();
        let f = one_frame(&buf[..n]);
        let decoded: Vec<_> = Ack::from_frame(&f).unwrap().actions().collect();
        assert_eq!(decoded.len(), accepted.len(), "in {len} bytes");
        for (d, a) in decoded.iter().zip(accepted) {
            assert_eq!(d.as_ref().unwrap(), a, "in {len} bytes");
        }
    }
    // Below the 11-byte header, there is no ACK to start.
    for len in 0..11 {
        let mut buf = vec![0u8; len];
        assert!(AckWriter::new(&mut buf, StreamId(0), FrameId(1), 16380).is_err());
    }
}

#[test]
fn frame_encode_refuses_a_payload_over_max_len() {
    let payload = [0u8; 250];
    let f = Frame {
        header: ack_header(0, 1, Flags::FIN),
        payload: &payload,
    };
    let mut buf = [0u8; 512];
    assert_eq!(
        f.encode(&mut buf, 256),
        Err(EncodeError::FrameTooBig { max: 256 })
    );
    assert_eq!(f.encode(&mut buf, 257), Ok(261));
}

// =============================================================================================
// Frame splitting
// =============================================================================================

#[test]
fn frame_decode_is_partial_for_every_strict_prefix_of_every_vector() {
    for (name, bytes) in all_vectors() {
        for cut in 0..bytes.len() {
            assert_eq!(
                Frame::decode(&bytes[..cut], 16380),
                Ok(Parsed::Partial),
                "{name} cut at {cut}"
            );
        }
    }
}

#[test]
fn frame_decode_takes_one_frame_off_a_stream() {
    let stream = cat(&[&vector("notify-ipv4"), &vector("notify-ipv6")]);
    let Ok(Parsed::Complete(f, n)) = Frame::decode(&stream, 16380) else {
        panic!()
    };
    assert_eq!(n, 34);
    assert_eq!(f.header.stream_id, StreamId(0));
    let Ok(Parsed::Complete(f, n)) = Frame::decode(&stream[34..], 16380) else {
        panic!()
    };
    assert_eq!(n, 46);
    assert_eq!(f.header.stream_id, StreamId(2));
}

#[test]
fn frame_decode_checks_length_from_the_four_length_bytes_alone() {
    use spop_core::frame::LengthError;
    assert_eq!(
        Frame::decode(&hex("00 00 40 00"), 16380),
        Err(FrameError::Length(LengthError::TooBig {
            length: 16384,
            max: 16380
        }))
    );
    assert_eq!(
        Frame::decode(&hex("00 00 00 06"), 16380),
        Err(FrameError::Length(LengthError::TooShort(6)))
    );
    assert_eq!(
        Frame::decode(&hex("00 00 00 00"), 16380),
        Err(FrameError::Length(LengthError::TooShort(0)))
    );
    // The limit itself is allowed.
    assert_eq!(
        Frame::decode(&hex("00 00 3f fc"), 16380),
        Ok(Parsed::Partial)
    );
}

#[test]
fn frame_decode_rejects_a_header_that_does_not_fit_its_length() {
    // LENGTH 7 but the stream-id varint wants more bytes than the frame has.
    let bytes = hex("00 00 00 07 03 00000001 f0 80");
    assert_eq!(
        Frame::decode(&bytes, 16380),
        Err(FrameError::Header(DecodeError::Truncated))
    );
}

// --- Encoders for HAProxy's side (tools and tests that play HAProxy) -------------------------

/// Re-encodes a decoded HAPROXY-HELLO.
fn reencode_hello(name: &str) -> Vec<u8> {
    let bytes = vector(name);
    let frame = Frame::decode_body(&bytes[4..]).unwrap();
    let hello = HaproxyHello::parse(frame.payload).unwrap();
    let mut out = vec![0u8; bytes.len() + 16];
    let n = hello.encode(&mut out).unwrap();
    out.truncate(n);
    out
}

#[test]
fn haproxy_hello_encoder_reproduces_haproxy_26_and_3x_bytes() {
    for name in [
        "haproxy-hello",
        "haproxy-hello-healthcheck",
        "haproxy-3.x/v31-haproxy-hello",
        "haproxy-3.x/v34-haproxy-hello",
        "haproxy-3.x/v31-haproxy-hello-healthcheck",
    ] {
        assert_eq!(reencode_hello(name), vector(name), "{name}");
    }
}

/// Re-encodes a decoded NOTIFY message by message, argument by argument.
fn reencode_notify(name: &str) -> Vec<u8> {
    let bytes = vector(name);
    let frame = Frame::decode_body(&bytes[4..]).unwrap();
    let notify = Notify::from_frame(&frame).unwrap();
    let mut out = vec![0u8; bytes.len() + 16];
    let mut w = NotifyWriter::new(&mut out, notify.stream_id, notify.frame_id, 16380).unwrap();
    for message in notify.messages() {
        let args: Vec<_> = message.args().collect();
        w.message(message.name, &args).unwrap();
    }
    let n = w.finish();
    out.truncate(n);
    out
}

#[test]
fn notify_writer_reproduces_haproxy_26_and_3x_notifies() {
    for name in [
        "notify-ipv4",
        "notify-ipv6",
        "notify-types-ipv4",
        "notify-types-ipv6",
        "haproxy-3.x/v31-notify-ipv4",
        "haproxy-3.x/v31-notify-ipv6",
        "haproxy-3.x/v34-notify-ipv4",
    ] {
        assert_eq!(reencode_notify(name), vector(name), "{name}");
    }
}

#[test]
fn notify_writer_refuses_a_message_past_max_frame_size_whole() {
    let mut out = [0u8; 1024];
    let mut w = NotifyWriter::new(&mut out, StreamId(1), FrameId(1), 256).unwrap();
    let small = [Arg {
        name: b"",
        value: TypedData::Ipv4(Ipv4Addr::LOCALHOST),
    }];
    w.message(b"check-client-ip", &small).unwrap();
    let big = [Arg {
        name: b"x",
        value: TypedData::Binary(&[7; 300]),
    }];
    assert_eq!(
        w.message(b"too-big", &big),
        Err(EncodeError::FrameTooBig { max: 256 })
    );
    let n = w.finish();
    assert_eq!(out[..n], vector("haproxy-3.x/v31-notify-ipv4")[..]);
}

#[test]
fn notify_writer_refuses_more_than_255_arguments() {
    let mut out = [0u8; 4096];
    let mut w = NotifyWriter::new(&mut out, StreamId(1), FrameId(1), 4000).unwrap();
    let args = vec![
        Arg {
            name: b"",
            value: TypedData::Null
        };
        256
    ];
    assert_eq!(w.message(b"m", &args), Err(EncodeError::TooManyArgs(256)));
}
