//! Per-message value fields of payload templates: what a whole JSON string value such as
//! `"{seq}"` or `"{int:50..99|alarm=10}"` becomes, and how it is rewritten for every message.
//!
//! Why it exists: a device's payload changes from message to message (a counter, a battery
//! level, a position), yet the hot path must not allocate or re-serialise. Each field has a
//! fixed width, decided once from its range, so a value is written in place into the
//! pre-serialised frame, right-aligned and padded with leading spaces (JSON allows whitespace
//! before a value; leading zeros would be invalid).
//!
//! The placeholders (each only as a whole string value; it becomes a JSON number or boolean):
//!
//! | placeholder                 | writes                                              | width |
//! |-----------------------------|-----------------------------------------------------|-------|
//! | `{seq}`                     | the client's message sequence number, from 1, modulo 10^10 | 10 |
//! | `{ts}`                      | epoch milliseconds at send time                     | 13    |
//! | `{int:MIN..MAX}`            | a uniform integer, both ends included (i64)         | the longer of MIN, MAX |
//! | `{float:MIN..MAX:D}`        | a uniform multiple of 10^-D in MIN..MAX, D decimals written (D at most [`MAX_DECIMALS`]; without `:D`, the most decimals MIN or MAX is written with) | the longer of MIN, MAX |
//! | `{bool:P}`                  | `true` with probability P (0 to 1), else `false`    | 5     |
//!
//! `|alarm=V` after the arguments (`{int:50..99|alarm=10}`, `{bool:0.98|alarm=false}`) gives the
//! value an alarm message writes instead ([`Field::write`]'s `alarm`); V need not lie in the
//! range and widens the field if it is longer. `{seq}` and `{ts}` take no alarm value.
//!
//! Randomness: a [`Rng`] per frame (so per connection), seeded from the client index, never
//! the OS source, and advanced in place: no allocation, a few nanoseconds per value.

/// Width of the `{seq}` field; the sequence number wraps modulo 10^SEQ_WIDTH.
pub const SEQ_WIDTH: usize = 10;

/// Width of the `{ts}` field: epoch milliseconds have 13 digits from 2001 to 2286.
pub const TS_WIDTH: usize = 13;

/// Most decimals a `{float}` field writes: MIN and MAX scaled by 10^15 still fit an i64 up to
/// ±9,223 (and smaller decimals allow larger ranges; the scaled values are checked).
pub const MAX_DECIMALS: u8 = 15;

/// Width of a `{bool}` field: `false`, or ` true` with a leading space.
const BOOL_WIDTH: usize = 5;

/// What a field writes per message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The client's message sequence number, modulo 10^width.
    Seq,
    /// Epoch milliseconds at send time.
    Ts,
    /// A uniform integer in `min ..= min + span`.
    Int { min: i64, span: u64 },
    /// A uniform value in `min ..= min + span`, both scaled by 10^decimals, written with
    /// `decimals` decimals.
    Float { min: i64, span: u64, decimals: u8 },
    /// `true` when the top 53 bits of a draw are below `true_below` (the probability × 2^53).
    Bool { true_below: u64 },
}

/// One per-message field: what it writes, its fixed width and its alarm value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub kind: Kind,
    /// Bytes the value occupies in the frame (right-aligned, space padded).
    pub width: u8,
    /// What an alarm message writes instead: an integer, a float scaled by 10^decimals, or 0/1
    /// for a boolean. None: alarm messages write an ordinary value.
    pub alarm: Option<i64>,
}

/// Whether `text` (a JSON string value) is a per-message placeholder: Some(Ok) when it is
/// one, Some(Err(problem)) when it names a field kind but is malformed, None for ordinary text
/// (kept as written; payloads may legitimately contain braces).
pub fn parse(text: &str) -> Option<Result<Field, String>> {
    if !is_field(text) {
        return None;
    }
    match text {
        "{seq}" => return Some(Ok(plain(Kind::Seq, SEQ_WIDTH))),
        "{ts}" => return Some(Ok(plain(Kind::Ts, TS_WIDTH))),
        _ => {}
    }
    let inner = &text[1..text.len() - 1];
    let (name, args) = inner.split_once(':')?;
    let parse_kind: fn(&str, Option<&str>) -> Result<Field, String> = match name {
        "int" => parse_int,
        "float" => parse_float,
        "bool" => parse_bool,
        _ => return None,
    };
    let (args, alarm) = match args.split_once('|') {
        Some((args, rest)) => match rest.trim().strip_prefix("alarm=") {
            Some(value) => (args, Some(value.trim())),
            None => {
                return Some(Err(format!(
                    "{text:?}: after | only alarm=VALUE may follow, e.g. {{int:50..99|alarm=10}}"
                )))
            }
        },
        None => (args, None),
    };
    Some(parse_kind(args.trim(), alarm).map_err(|problem| format!("{text:?}: {problem}")))
}

/// Whether `text` is a per-message placeholder, valid or not: what [`parse`] does not pass
/// over. Cheap (no parsing), for walks over a payload already checked by [`parse`].
#[inline]
pub fn is_field(text: &str) -> bool {
    text == "{seq}"
        || text == "{ts}"
        || (text.ends_with('}')
            && ["{int:", "{float:", "{bool:"]
                .iter()
                .any(|kind| text.starts_with(kind)))
}

/// Whether `text` mentions a per-message placeholder without being one: `{seq}`, `{ts}`,
/// `{int:`, `{float:` or `{bool:` inside a longer string (refused: they become numbers).
pub fn mentioned_inside(text: &str) -> bool {
    ["{seq}", "{ts}", "{int:", "{float:", "{bool:"]
        .iter()
        .any(|name| text.contains(name))
}

fn plain(kind: Kind, width: usize) -> Field {
    Field {
        kind,
        width: width as u8,
        alarm: None,
    }
}

fn parse_int(args: &str, alarm: Option<&str>) -> Result<Field, String> {
    const FORM: &str = "expected {int:MIN..MAX}, e.g. {int:0..999999}";
    let (min, max) = args.split_once("..").ok_or(FORM)?;
    let number = |text: &str| text.trim().parse::<i64>().map_err(|_| FORM.to_string());
    let (min, max) = (number(min)?, number(max)?);
    if min > max {
        return Err(format!("MIN {min} is greater than MAX {max}"));
    }
    let alarm = alarm
        .map(|text| {
            text.parse::<i64>()
                .map_err(|_| format!("alarm={text}: expected an integer"))
        })
        .transpose()?;
    let width = [Some(min), Some(max), alarm]
        .into_iter()
        .flatten()
        .map(|value| fixed_len(value, 0))
        .max()
        .unwrap_or(1);
    Ok(Field {
        kind: Kind::Int {
            min,
            span: max.abs_diff(min),
        },
        width: width as u8,
        alarm,
    })
}

fn parse_float(args: &str, alarm: Option<&str>) -> Result<Field, String> {
    const FORM: &str = "expected {float:MIN..MAX:DECIMALS}, e.g. {float:20.0..30.0:2}";
    let (range, decimals) = match args.split_once(':') {
        Some((range, decimals)) => (range, Some(decimals.trim())),
        None => (args, None),
    };
    let (min_text, max_text) = range.split_once("..").ok_or(FORM)?;
    let (min_text, max_text) = (min_text.trim(), max_text.trim());
    let decimals = match decimals {
        Some(text) => text
            .parse::<u8>()
            .ok()
            .filter(|&d| d <= MAX_DECIMALS)
            .ok_or_else(|| format!("decimals {text:?}: expected 0 to {MAX_DECIMALS}"))?,
        None => decimals_written(min_text).max(decimals_written(max_text)),
    };
    if decimals > MAX_DECIMALS {
        return Err(format!("at most {MAX_DECIMALS} decimals"));
    }
    let (min, max) = (
        parse_scaled(min_text, decimals)?,
        parse_scaled(max_text, decimals)?,
    );
    if min > max {
        return Err(format!("MIN {min_text} is greater than MAX {max_text}"));
    }
    let alarm = alarm
        .map(|text| parse_scaled(text, decimals).map_err(|problem| format!("alarm={problem}")))
        .transpose()?;
    let width = [Some(min), Some(max), alarm]
        .into_iter()
        .flatten()
        .map(|value| fixed_len(value, decimals))
        .max()
        .unwrap_or(1);
    Ok(Field {
        kind: Kind::Float {
            min,
            span: max.abs_diff(min),
            decimals,
        },
        width: width as u8,
        alarm,
    })
}

fn parse_bool(args: &str, alarm: Option<&str>) -> Result<Field, String> {
    const FORM: &str = "expected {bool:P} with P the probability of true, 0 to 1, e.g. {bool:0.98}";
    let probability = args
        .parse::<f64>()
        .ok()
        .filter(|p| (0.0..=1.0).contains(p))
        .ok_or(FORM)?;
    let alarm = match alarm {
        None => None,
        Some("true") => Some(1),
        Some("false") => Some(0),
        Some(other) => return Err(format!("alarm={other}: expected true or false")),
    };
    Ok(Field {
        kind: Kind::Bool {
            true_below: (probability * (1u64 << 53) as f64).round() as u64,
        },
        width: BOOL_WIDTH as u8,
        alarm,
    })
}

/// Decimals written in a plain decimal number (`20.50` has 2).
fn decimals_written(text: &str) -> u8 {
    text.split_once('.')
        .map_or(0, |(_, fraction)| fraction.len().min(255) as u8)
}

/// `text` (`-12.5`, `30`, `0.125`) scaled by 10^decimals, exactly (no binary rounding):
/// plain decimal notation only, no more decimals than `decimals`, within an i64.
fn parse_scaled(text: &str, decimals: u8) -> Result<i64, String> {
    let form = || format!("{text}: expected a decimal number such as 20.5 or -3");
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !all_digits(whole) || !all_digits(fraction) {
        return Err(form());
    }
    if fraction.len() > usize::from(decimals) {
        return Err(format!("{text} has more than {decimals} decimals"));
    }
    let too_large = || format!("{text} is too large for {decimals} decimals");
    let mut scaled: i64 = 0;
    let padded = fraction.bytes().chain(std::iter::repeat(b'0'));
    let fraction_digits = padded.take(usize::from(decimals));
    for digit in whole.bytes().chain(fraction_digits) {
        scaled = scaled
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(digit - b'0')))
            .ok_or_else(too_large)?;
    }
    Ok(if negative { -scaled } else { scaled })
}

/// Characters `value` (scaled by 10^decimals) takes when written with `decimals` decimals.
fn fixed_len(value: i64, decimals: u8) -> usize {
    let mut digits = 1;
    let mut rest = value.unsigned_abs() / 10;
    while rest > 0 {
        digits += 1;
        rest /= 10;
    }
    let digits = digits.max(usize::from(decimals) + 1);
    let point = usize::from(decimals > 0);
    usize::from(value < 0) + digits + point
}

impl Field {
    /// Write this field's value for one message into `out` (exactly `self.width` bytes).
    /// `alarm`: write the alarm value, if the field has one.
    #[inline]
    pub fn write(&self, out: &mut [u8], rng: &mut Rng, seq: u64, now_epoch_ms: u64, alarm: bool) {
        let alarm = if alarm { self.alarm } else { None };
        match self.kind {
            Kind::Seq => write_number_padded(out, seq),
            Kind::Ts => write_number_padded(out, now_epoch_ms),
            Kind::Int { min, span } => {
                let value = alarm.unwrap_or_else(|| min.wrapping_add(rng.up_to(span) as i64));
                write_fixed(out, value, 0);
            }
            Kind::Float {
                min,
                span,
                decimals,
            } => {
                let value = alarm.unwrap_or_else(|| min.wrapping_add(rng.up_to(span) as i64));
                write_fixed(out, value, decimals);
            }
            Kind::Bool { true_below } => {
                let value = match alarm {
                    Some(value) => value != 0,
                    None => rng.chance(true_below),
                };
                out.copy_from_slice(if value { b" true" } else { b"false" });
            }
        }
    }

    /// Write the value a frame holds before its first message (0, MIN, false): valid JSON,
    /// so a frame's template bytes parse.
    pub fn write_initial(&self, out: &mut [u8]) {
        match self.kind {
            Kind::Seq | Kind::Ts => write_number_padded(out, 0),
            Kind::Int { min, .. } => write_fixed(out, min, 0),
            Kind::Float { min, decimals, .. } => write_fixed(out, min, decimals),
            Kind::Bool { .. } => out.copy_from_slice(b"false"),
        }
    }
}

/// Write `value` modulo 10^width right-aligned in `field`, padded with leading spaces.
/// Digits by hand: this runs for every message.
#[inline]
pub fn write_number_padded(field: &mut [u8], value: u64) {
    let mut rest = match POW10.get(field.len()) {
        Some(&modulus) => value % modulus,
        None => value,
    };
    let mut end = field.len();
    while end > 0 {
        end -= 1;
        field[end] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    field[..end].fill(b' ');
}

/// Write `value` (scaled by 10^decimals) with `decimals` decimals, right-aligned in `field`
/// and padded with leading spaces: `-0.05` for -5 with 2 decimals. The field's width was made
/// for the widest value, so it always fits; were it too narrow the leading digits are lost,
/// never a panic.
#[inline]
fn write_fixed(field: &mut [u8], value: i64, decimals: u8) {
    let decimals = usize::from(decimals);
    let mut rest = value.unsigned_abs();
    let mut end = field.len();
    let mut written = 0;
    while end > 0 {
        if decimals > 0 && written == decimals {
            end -= 1;
            field[end] = b'.';
            if end == 0 {
                break;
            }
        }
        end -= 1;
        field[end] = b'0' + (rest % 10) as u8;
        rest /= 10;
        written += 1;
        if rest == 0 && written > decimals {
            break;
        }
    }
    if value < 0 && end > 0 {
        end -= 1;
        field[end] = b'-';
    }
    field[..end].fill(b' ');
}

const POW10: [u64; 20] = {
    let mut table = [1u64; 20];
    let mut n = 1;
    while n < 20 {
        table[n] = table[n - 1] * 10;
        n += 1;
    }
    table
};

/// A small, fast generator (wyrand: one 64-bit word of state, a multiply per draw) for
/// per-message values. Not for secrets. Seeded per frame by [`seed_for`], so a run's values
/// are reproducible and no two clients share a sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng {
            state: splitmix64(seed),
        }
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0xa076_1d64_78bd_642f);
        let product = u128::from(self.state) * u128::from(self.state ^ 0xe703_7ed1_a0b4_28db);
        (product >> 64) as u64 ^ product as u64
    }

    /// Uniform in `0 ..= span` (Lemire's multiply-shift; the bias, at most span / 2^64, is
    /// far below anything a load test can see).
    #[inline]
    pub fn up_to(&mut self, span: u64) -> u64 {
        match span.checked_add(1) {
            Some(count) => ((u128::from(self.next_u64()) * u128::from(count)) >> 64) as u64,
            None => self.next_u64(),
        }
    }

    /// True with probability `true_below` / 2^53.
    #[inline]
    pub fn chance(&mut self, true_below: u64) -> bool {
        (self.next_u64() >> 11) < true_below
    }
}

/// The seed of client `client`'s frame for payload object `object`, from the run's seed
/// (0: none given).
pub fn seed_for(run_seed: u64, client: u64, object: u64) -> u64 {
    splitmix64(splitmix64(splitmix64(run_seed) ^ client) ^ object)
}

/// SplitMix64's output function: spreads nearby seeds (client 1, 2, 3...) over the state.
fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(text: &str) -> Field {
        parse(text).expect("a placeholder").expect("a valid one")
    }

    fn problem(text: &str) -> String {
        parse(text)
            .expect("a placeholder")
            .expect_err("a malformed one")
    }

    /// Write `field` once and return the text.
    fn written(field: &Field, rng: &mut Rng, alarm: bool) -> String {
        let mut out = vec![b'?'; usize::from(field.width)];
        field.write(&mut out, rng, 7, 1_700_000_000_000, alarm);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn seq_and_ts_keep_their_widths_and_take_no_arguments() {
        assert_eq!(field("{seq}"), plain(Kind::Seq, 10));
        assert_eq!(field("{ts}"), plain(Kind::Ts, 13));
        assert!(parse("{seq:1}").is_none(), "not a field kind: kept as text");
    }

    #[test]
    fn ordinary_strings_and_unknown_names_are_not_fields() {
        for text in [
            "",
            "abc",
            "{x}",
            "{i}",
            "{token}",
            "{int}",
            "{nope:1..2}",
            "int:1..2",
        ] {
            assert!(parse(text).is_none(), "{text:?}");
        }
    }

    #[test]
    fn an_int_range_sets_the_width_of_its_longest_end_and_its_alarm() {
        let f = field("{int:0..999999}");
        assert_eq!(
            f.kind,
            Kind::Int {
                min: 0,
                span: 999_999
            }
        );
        assert_eq!((f.width, f.alarm), (6, None));
        let f = field("{int:50..99|alarm=10}");
        assert_eq!((f.width, f.alarm), (2, Some(10)));
        let f = field("{int: -5 .. 3 | alarm=-100}");
        assert_eq!(f.kind, Kind::Int { min: -5, span: 8 });
        assert_eq!((f.width, f.alarm), (4, Some(-100)));
        let f = field("{int:-9223372036854775808..9223372036854775807}");
        assert_eq!(
            f.kind,
            Kind::Int {
                min: i64::MIN,
                span: u64::MAX
            }
        );
        assert_eq!(f.width, 20);
    }

    #[test]
    fn a_float_range_is_exact_in_its_decimals() {
        let f = field("{float:20.0..30.0:2}");
        assert_eq!(
            f.kind,
            Kind::Float {
                min: 2000,
                span: 1000,
                decimals: 2
            }
        );
        assert_eq!(f.width, 5);
        let f = field("{float:-0.5..1.25}");
        assert_eq!(
            f.kind,
            Kind::Float {
                min: -50,
                span: 175,
                decimals: 2
            }
        );
        assert_eq!(f.width, 5, "-0.50");
        let f = field("{float:0..100:1|alarm=-1}");
        assert_eq!((f.width, f.alarm), (5, Some(-10)));
    }

    #[test]
    fn bool_takes_a_probability_and_true_or_false_as_alarm() {
        let f = field("{bool:0.98|alarm=false}");
        assert_eq!(f.width, 5);
        assert_eq!(f.alarm, Some(0));
        assert_eq!(
            field("{bool:1}").kind,
            Kind::Bool {
                true_below: 1 << 53
            }
        );
        assert_eq!(field("{bool:0}").kind, Kind::Bool { true_below: 0 });
    }

    #[test]
    fn malformed_fields_say_what_was_expected() {
        let cases = [
            ("{int:5..1}", "MIN 5 is greater than MAX 1"),
            ("{int:1-5}", "expected {int:MIN..MAX}"),
            ("{int:a..5}", "expected {int:MIN..MAX}"),
            ("{int:0..99999999999999999999}", "expected {int:MIN..MAX}"),
            ("{int:0..9|alarm=x}", "alarm=x: expected an integer"),
            ("{int:0..9|max=3}", "only alarm=VALUE may follow"),
            ("{float:1.0..2.0:16}", "expected 0 to 15"),
            ("{float:1.25..2:1}", "1.25 has more than 1 decimals"),
            ("{float:1e3..2e3}", "expected a decimal number"),
            ("{float:3.0..2.0}", "MIN 3.0 is greater than MAX 2.0"),
            ("{float:0..99999:15}", "too large for 15 decimals"),
            ("{float:..2}", "expected a decimal number"),
            ("{bool:1.5}", "expected {bool:P}"),
            ("{bool:NaN}", "expected {bool:P}"),
            ("{bool:0.5|alarm=1}", "alarm=1: expected true or false"),
        ];
        for (text, expected) in cases {
            let problem = problem(text);
            assert!(problem.contains(expected), "{text}: {problem}");
            assert!(problem.starts_with(&format!("{text:?}: ")), "{problem}");
        }
    }

    #[test]
    fn fields_inside_longer_strings_are_noticed() {
        assert!(mentioned_inside("id-{seq}"));
        assert!(mentioned_inside("x{int:1..2}"));
        assert!(!mentioned_inside("{i}-{token}"));
    }

    #[test]
    fn fixed_point_values_are_right_aligned_with_their_sign_and_decimals() {
        let cases: [(i64, u8, usize, &str); 8] = [
            (5, 2, 6, "  0.05"),
            (-5, 2, 6, " -0.05"),
            (2550, 2, 6, " 25.50"),
            (0, 0, 3, "  0"),
            (-42, 0, 4, " -42"),
            (999_999, 0, 6, "999999"),
            (-1000, 1, 6, "-100.0"),
            (i64::MIN, 0, 20, "-9223372036854775808"),
        ];
        for (value, decimals, width, expected) in cases {
            let mut out = vec![b'?'; width];
            write_fixed(&mut out, value, decimals);
            assert_eq!(std::str::from_utf8(&out).unwrap(), expected);
            assert_eq!(fixed_len(value, decimals), expected.trim_start().len());
        }
    }

    #[test]
    fn a_field_too_narrow_loses_digits_but_never_panics() {
        let mut out = [b'?'; 2];
        write_fixed(&mut out, -12345, 2);
        write_fixed(&mut out, 7, 3);
        let mut empty = [0u8; 0];
        write_fixed(&mut empty, 1, 0);
    }

    #[test]
    fn numbers_are_right_aligned_and_space_padded() {
        let mut field = [0u8; 10];
        write_number_padded(&mut field, 42);
        assert_eq!(&field, b"        42");
        write_number_padded(&mut field, 0);
        assert_eq!(&field, b"         0");
        write_number_padded(&mut field, 9_999_999_999);
        assert_eq!(&field, b"9999999999");
    }

    #[test]
    fn seq_wraps_modulo_ten_to_the_tenth() {
        let mut field = [0u8; SEQ_WIDTH];
        write_number_padded(&mut field, 10_000_000_005);
        assert_eq!(&field, b"         5");
        write_number_padded(&mut field, u64::MAX);
        assert_eq!(&field, b"3709551615");
    }

    #[test]
    fn random_values_stay_in_range_cover_it_and_parse_as_json() {
        let mut rng = Rng::new(1);
        for (text, lo, hi) in [
            ("{int:50..99}", 50.0, 99.0),
            ("{int:-3..3}", -3.0, 3.0),
            ("{float:20.0..30.0:2}", 20.0, 30.0),
            ("{float:-1..1:3}", -1.0, 1.0),
        ] {
            let f = field(text);
            let (mut seen_lo, mut seen_hi) = (f64::MAX, f64::MIN);
            for _ in 0..20_000 {
                let text = written(&f, &mut rng, false);
                let value: f64 = serde_json::from_str(&text).unwrap();
                assert!((lo..=hi).contains(&value), "{value} outside {lo}..{hi}");
                seen_lo = seen_lo.min(value);
                seen_hi = seen_hi.max(value);
            }
            assert_eq!((seen_lo, seen_hi), (lo, hi), "{text}: both ends are drawn");
        }
    }

    #[test]
    fn the_whole_i64_range_is_drawn_without_overflow() {
        let f = field("{int:-9223372036854775808..9223372036854775807}");
        let mut rng = Rng::new(3);
        for _ in 0..1000 {
            let text = written(&f, &mut rng, false);
            assert!(text.trim().parse::<i64>().is_ok(), "{text}");
        }
    }

    #[test]
    fn bool_is_true_about_as_often_as_asked_and_always_at_one() {
        let mut rng = Rng::new(9);
        let f = field("{bool:0.98}");
        let trues = (0..100_000)
            .filter(|_| written(&f, &mut rng, false) == " true")
            .count();
        // 98% of 100,000: the standard deviation is 44, so 97,700..98,300 is 6.8 sigma wide.
        assert!((97_700..=98_300).contains(&trues), "{trues}");
        let always = field("{bool:1}");
        assert!((0..1000).all(|_| written(&always, &mut rng, false) == " true"));
        let never = field("{bool:0}");
        assert!((0..1000).all(|_| written(&never, &mut rng, false) == "false"));
    }

    #[test]
    fn an_alarm_message_writes_the_alarm_value_and_others_do_not() {
        let mut rng = Rng::new(5);
        let battery = field("{int:50..99|alarm=10}");
        assert_eq!(written(&battery, &mut rng, true), "10");
        assert!((0..1000).all(|_| written(&battery, &mut rng, false) != "10"));
        let leak = field("{bool:1|alarm=false}");
        assert_eq!(written(&leak, &mut rng, true), "false");
        let temp = field("{float:20..30:1|alarm=85.5}");
        assert_eq!(written(&temp, &mut rng, true), "85.5");
        let counter = field("{int:0..9}");
        let value: i64 = written(&counter, &mut rng, true).trim().parse().unwrap();
        assert!((0..=9).contains(&value), "no alarm value: an ordinary one");
        let seq = field("{seq}");
        assert_eq!(written(&seq, &mut rng, true), "         7");
    }

    #[test]
    fn generators_are_reproducible_per_seed_and_differ_between_clients() {
        let draws = |seed| {
            let mut rng = Rng::new(seed);
            (0..8).map(|_| rng.next_u64()).collect::<Vec<_>>()
        };
        assert_eq!(draws(seed_for(0, 1, 0)), draws(seed_for(0, 1, 0)));
        assert_ne!(draws(seed_for(0, 1, 0)), draws(seed_for(0, 2, 0)));
        assert_ne!(draws(seed_for(0, 1, 0)), draws(seed_for(0, 1, 1)));
        assert_ne!(draws(seed_for(0, 1, 0)), draws(seed_for(7, 1, 0)));
    }

    #[test]
    fn the_initial_value_is_valid_json() {
        for text in [
            "{seq}",
            "{ts}",
            "{int:-5..5}",
            "{float:1.5..2.5}",
            "{bool:0.5}",
        ] {
            let f = field(text);
            let mut out = vec![b'?'; usize::from(f.width)];
            f.write_initial(&mut out);
            assert!(
                serde_json::from_slice::<serde_json::Value>(&out).is_ok(),
                "{text}"
            );
        }
    }
}
