//! Histograms as text: HdrHistogram's standard V2 compressed encoding, base64 (RFC 4648).
//!
//! Result files carry every histogram in this form (whole-run and per second) so any
//! HdrHistogram implementation can decode and add them: that is what makes results from many
//! hosts merge exactly. A result file is input from outside: decoding never panics, and the
//! sizes an encoding declares (its payload lengths, its value range and precision) are checked
//! against the bytes present and against the bounds mqblast writes before anything is sized
//! from them, so memory stays bounded by the length of the text. A bad string is an error the
//! caller names.

use std::io::Read;

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use flate2::read::ZlibDecoder;
use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;

use super::{new_histogram, LATENCY_MAX_US, SIGFIG};

/// Standard base64 (RFC 4648 §4), padding written, optional when read.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// HdrHistogram's V2 cookies (plain and zlib-compressed).
const V2_COOKIE: u32 = 0x1c84_9313;
const V2_COMPRESSED_COOKIE: u32 = 0x1c84_9314;
/// The V2 header: cookie, payload length, normalizing offset, significant figures, lowest and
/// highest trackable value, integer-to-double ratio.
const V2_HEADER_BYTES: usize = 40;
/// The compressed form's header: cookie and compressed length.
const V2_COMPRESSED_HEADER_BYTES: usize = 8;
/// Longest zig-zag LEB128 varint of one count.
const VARINT_MAX_BYTES: usize = 9;

/// The histogram in V2 compressed encoding, base64; `None` if encoding failed.
pub fn encode(histogram: &Histogram<u64>) -> Option<String> {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(histogram, &mut bytes)
        .ok()?;
    Some(base64_encode(&bytes))
}

/// Decodes [`encode`]'s text into a histogram with the standard fixed bounds, so it can be
/// added to any other histogram of the program.
///
/// Memory is bounded before decoding: the compressed length must fit the bytes present, the
/// inflated encoding may be no longer than the longest one of a histogram with mqblast's bounds
/// (so a small zlib stream cannot expand without limit), its payload length must fit the bytes
/// inflated, and its range and precision must lie within what mqblast writes (lowest value at
/// least 1, highest at most [`LATENCY_MAX_US`], at most [`SIGFIG`] significant figures).
pub fn decode(text: &str) -> Result<Histogram<u64>, String> {
    let bytes = base64_decode(text)?;
    let plain = inflate_v2(&bytes)?;
    check_v2_header(&plain)?;
    let decoded: Histogram<u64> = Deserializer::new()
        .deserialize(&mut plain.as_slice())
        .map_err(|e| format!("not an HdrHistogram V2 encoding: {e}"))?;
    let mut histogram = new_histogram();
    histogram
        .add(&decoded)
        .map_err(|e| format!("histogram out of bounds: {e:?}"))?;
    Ok(histogram)
}

/// The plain V2 encoding inside `bytes` (inflated if compressed), at most
/// [`max_v2_bytes`] long.
fn inflate_v2(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let cookie = be_u32(bytes, 0).ok_or("shorter than an HdrHistogram V2 header")?;
    match cookie {
        V2_COOKIE => {
            if bytes.len() > max_v2_bytes() {
                return Err(format!(
                    "encoding of {} bytes is longer than any histogram mqblast writes ({} bytes)",
                    bytes.len(),
                    max_v2_bytes()
                ));
            }
            Ok(bytes.to_vec())
        }
        V2_COMPRESSED_COOKIE => {
            let declared = be_u32(bytes, 4).ok_or("shorter than an HdrHistogram V2 header")?;
            let present = bytes.len() - V2_COMPRESSED_HEADER_BYTES;
            if usize::try_from(declared).map_or(true, |d| d > present) {
                return Err(format!(
                    "declares {declared} compressed bytes where {present} are present"
                ));
            }
            let compressed = &bytes[V2_COMPRESSED_HEADER_BYTES..][..declared as usize];
            let limit = max_v2_bytes();
            let mut plain = Vec::new();
            ZlibDecoder::new(compressed)
                .take(limit as u64 + 1)
                .read_to_end(&mut plain)
                .map_err(|e| format!("not an HdrHistogram V2 encoding: {e}"))?;
            if plain.len() > limit {
                return Err(format!(
                    "inflates past {limit} bytes, longer than any histogram mqblast writes"
                ));
            }
            Ok(plain)
        }
        other => Err(format!(
            "not an HdrHistogram V2 encoding (cookie {other:#010x})"
        )),
    }
}

/// Refuses a plain V2 header whose payload length exceeds the bytes present, or whose range
/// or precision lies outside what mqblast writes, before the decoder sizes anything from it.
fn check_v2_header(plain: &[u8]) -> Result<(), String> {
    let short = || "shorter than an HdrHistogram V2 header".to_string();
    if be_u32(plain, 0) != Some(V2_COOKIE) {
        return Err("not an HdrHistogram V2 encoding (inner cookie)".to_string());
    }
    if plain.len() < V2_HEADER_BYTES {
        return Err(short());
    }
    let declared = be_u32(plain, 4).ok_or_else(short)?;
    let present = plain.len() - V2_HEADER_BYTES;
    if usize::try_from(declared).map_or(true, |d| d > present) {
        return Err(format!(
            "declares a payload of {declared} bytes where {present} are present"
        ));
    }
    let significant_figures = be_u32(plain, 12).ok_or_else(short)?;
    if significant_figures > u32::from(SIGFIG) {
        return Err(format!(
            "significant figures {significant_figures} outside 0..={SIGFIG}, the precision mqblast writes"
        ));
    }
    let lowest = be_u64(plain, 16).ok_or_else(short)?;
    if lowest < 1 {
        return Err("lowest trackable value 0: mqblast writes 1".to_string());
    }
    let highest = be_u64(plain, 24).ok_or_else(short)?;
    if highest > LATENCY_MAX_US {
        return Err(format!(
            "highest trackable value {highest} above {LATENCY_MAX_US}, the most mqblast writes"
        ));
    }
    Ok(())
}

/// The longest plain V2 encoding of a histogram with mqblast's bounds: the header and one
/// longest varint per counter.
fn max_v2_bytes() -> usize {
    V2_HEADER_BYTES + VARINT_MAX_BYTES * new_histogram().distinct_values()
}

fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn be_u64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// Standard base64 with padding (RFC 4648 §4).
pub fn base64_encode(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

/// Decodes standard base64; padding optional, whitespace refused.
pub fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    BASE64.decode(text).map_err(|e| format!("not base64: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_rfc_4648_test_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(input.as_bytes()), expected);
            assert_eq!(base64_decode(expected).unwrap(), input.as_bytes());
        }
        assert!(base64_decode("Zm9v!").is_err());
    }

    #[test]
    fn a_histogram_decodes_to_the_same_histogram() {
        let mut h = new_histogram();
        for v in [1, 2, 500, 70_000, 3_000_000] {
            h.saturating_record(v);
        }
        let decoded = decode(&encode(&h).unwrap()).unwrap();
        assert_eq!(decoded, h);
        assert!(decode("AAAA").is_err());
    }

    /// A plain V2 header: payload length, significant figures, lowest and highest value.
    fn v2_header(payload_len: u32, sigfig: u32, lowest: u64, highest: u64) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&V2_COOKIE.to_be_bytes());
        bytes.extend_from_slice(&payload_len.to_be_bytes());
        bytes.extend_from_slice(&0u32.to_be_bytes());
        bytes.extend_from_slice(&sigfig.to_be_bytes());
        bytes.extend_from_slice(&lowest.to_be_bytes());
        bytes.extend_from_slice(&highest.to_be_bytes());
        bytes.extend_from_slice(&1.0f64.to_be_bytes());
        bytes
    }

    fn compressed(plain: &[u8], declared: Option<u32>) -> Vec<u8> {
        use std::io::Write;
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(plain).unwrap();
        let body = z.finish().unwrap();
        let mut bytes = V2_COMPRESSED_COOKIE.to_be_bytes().to_vec();
        let len = declared.unwrap_or(body.len() as u32);
        bytes.extend_from_slice(&len.to_be_bytes());
        bytes.extend_from_slice(&body);
        bytes
    }

    #[test]
    fn a_56_character_histogram_declaring_a_4_gb_payload_is_refused_before_allocating() {
        let text = base64_encode(&v2_header(u32::MAX, 3, 1, 3_600_000_000));
        assert_eq!(text.len(), 56);
        let err = decode(&text).unwrap_err();
        assert!(
            err.contains("declares a payload of 4294967295 bytes where 0 are present"),
            "{err}"
        );
        // The same header inside the compressed form.
        let err = decode(&base64_encode(&compressed(
            &v2_header(u32::MAX, 3, 1, 1000),
            None,
        )))
        .unwrap_err();
        assert!(
            err.contains("declares a payload of 4294967295 bytes"),
            "{err}"
        );
    }

    #[test]
    fn a_compressed_length_past_the_bytes_present_is_refused() {
        let mut h = new_histogram();
        h.saturating_record(42);
        let mut bytes = base64_decode(&encode(&h).unwrap()).unwrap();
        let present = bytes.len() as u32 - 8;
        bytes[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        let err = decode(&base64_encode(&bytes)).unwrap_err();
        assert!(
            err.contains(&format!(
                "declares 4294967295 compressed bytes where {present}"
            )),
            "{err}"
        );
    }

    #[test]
    fn a_zlib_stream_inflating_past_any_histogram_we_write_is_refused() {
        // 64 MiB of zeros compresses to about 64 KiB.
        let mut plain = v2_header(64 << 20, 3, 1, 1000);
        plain.resize(plain.len() + (64 << 20), 0);
        let err = decode(&base64_encode(&compressed(&plain, None))).unwrap_err();
        assert!(err.contains("inflates past"), "{err}");
    }

    #[test]
    fn a_range_or_precision_outside_what_we_write_is_refused_by_name() {
        for (sigfig, lowest, highest, expected) in [
            (5, 1, 1000, "significant figures 5"),
            (
                3,
                1,
                u64::MAX / 2,
                "highest trackable value 9223372036854775807",
            ),
            (3, 0, 1000, "lowest trackable value 0"),
        ] {
            let err = decode(&base64_encode(&v2_header(0, sigfig, lowest, highest))).unwrap_err();
            assert!(err.contains(expected), "{err}");
        }
    }
}
