//! Codec micro-benchmarks: the per-message costs the engine pays on its hot path.
//!
//! Encoding a PUBLISH from scratch is what a naive client does per message; copying a
//! pre-encoded frame and patching its packet identifier is what mqblast does instead.
//! Decoding PUBACKs, one at a time and back-to-back from one read buffer, is the receive
//! side of a QoS 1 run.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use mqblast::mqtt::{ack, decode, publish, Packet};

const TOPIC: &str = "mqblast/bench/client-0001";
/// Sized so that the whole QoS 1 frame is 200 bytes: fixed header (1 + 2-byte remaining
/// length), topic (2 + len), packet identifier (2), payload.
const PAYLOAD_BYTES: usize = 200 - 3 - 2 - TOPIC.len() - 2;
const PUBACKS_PER_STREAM: u16 = 1000;

fn encode_publish(c: &mut Criterion) {
    let payload = vec![0xA5u8; PAYLOAD_BYTES];
    let mut out = Vec::with_capacity(512);
    c.bench_function("encode_publish_qos1_200B", |b| {
        b.iter(|| {
            out.clear();
            let layout = publish::encode(
                &mut out,
                black_box(TOPIC),
                1,
                false,
                black_box(42),
                &payload,
            );
            black_box((&out, layout));
        })
    });
}

fn copy_and_patch_frame(c: &mut Criterion) {
    let mut frame = Vec::new();
    let layout = publish::encode(&mut frame, TOPIC, 1, false, 1, &[0xA5; PAYLOAD_BYTES]);
    assert_eq!(layout.len, 200);
    let pkid_at = layout.pkid_at.expect("QoS 1 frame has a packet identifier");
    let mut out = Vec::with_capacity(512);
    let mut pkid: u16 = 0;
    c.bench_function("copy_and_patch_publish_qos1_200B", |b| {
        b.iter(|| {
            out.clear();
            out.extend_from_slice(black_box(&frame));
            pkid = pkid.wrapping_add(1).max(1);
            publish::patch_pkid(&mut out, pkid_at, pkid);
            black_box(&out);
        })
    });
}

fn decode_puback(c: &mut Criterion) {
    let mut frame = Vec::new();
    ack::encode_puback(&mut frame, 0x1234);
    c.bench_function("decode_puback", |b| {
        b.iter(|| black_box(decode(black_box(&frame))))
    });
}

fn decode_puback_stream(c: &mut Criterion) {
    let mut stream = Vec::with_capacity(4 * usize::from(PUBACKS_PER_STREAM));
    for pkid in 1..=PUBACKS_PER_STREAM {
        ack::encode_puback(&mut stream, pkid);
    }
    let mut group = c.benchmark_group("decode_puback_stream");
    group.throughput(Throughput::Elements(u64::from(PUBACKS_PER_STREAM)));
    group.bench_function("1000_back_to_back", |b| {
        b.iter(|| {
            let buf = black_box(&stream[..]);
            let mut at = 0;
            let mut pkid_sum = 0u32;
            while let Ok(Some((packet, consumed))) = decode(&buf[at..]) {
                if let Packet::PubAck { pkid, reason: 0 } = packet {
                    pkid_sum += u32::from(pkid);
                }
                at += consumed;
            }
            black_box((at, pkid_sum))
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    encode_publish,
    copy_and_patch_frame,
    decode_puback,
    decode_puback_stream
);
criterion_main!(benches);
