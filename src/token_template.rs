//! Device tokens named by index (`--tokens-template 'DW{i:08}'`), as ThingsBoard's performance
//! tests name the devices they create: `DW00000000`, `DW00000001`, ... (`GW` for gateways),
//! from `DEVICE_START_IDX` (`--tokens-start`).
//!
//! Why it exists: that tool's devices number in the hundreds of thousands; a token list of
//! them is a file to make, and costs about 50 bytes a token in memory (a `String` and its
//! text). A template holds nothing per device: a client's token is rendered from its index
//! when its frames are built and at each CONNECT (a short string then, never per message).
//!
//! Which number a client uses follows the indexes a token list's split follows:
//! - one process, and every `--shard K/N` (whose clients keep their global indexes): client i
//!   (from 0) uses `start + i`, so shards never share a device;
//! - a Locust worker the master lists as worker K of N (see `locust::options::token_shard`):
//!   its j-th user (from 0) uses `start + (K - 1) + j * N`. Interleaved rather than in
//!   contiguous slices, because a template has no length to slice and the master changes the
//!   users live: it spreads them evenly over its workers, so the devices in use stay
//!   `start .. start + users`. A worker the master does not list uses `start + j`, as it would
//!   use a token list from its first token.

use crate::shard::Shard;

/// Largest `--tokens-start`: far beyond any device count, and `start + index * workers` stays
/// far from overflowing a u64 (indexes are below 2^32, workers below 2^16).
pub const MAX_START: u64 = 1_000_000_000_000_000;

/// Most digits `{i:0W}` pads to: a u64 has at most 20.
const MAX_WIDTH: usize = 20;

/// A parsed template: text, one `{i}` or `{i:0W}`, text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenTemplate {
    written: String,
    prefix: String,
    suffix: String,
    /// Zero-padded to this many digits (0: no padding).
    width: usize,
}

impl TokenTemplate {
    /// Parse `DW{i:08}`: exactly one `{i}` or `{i:0W}` (W from 1 to 20), no other braces, no
    /// NUL; the problem is one line without the template (the caller names it).
    pub fn parse(text: &str) -> Result<TokenTemplate, String> {
        const FORM: &str =
            "expected text with one {i} or {i:0W} (the device number zero-padded to W digits, W from 1 to 20), e.g. DW{i:08}";
        let open = text.find('{').ok_or_else(|| {
            format!("has no {{i}}: {FORM} (without one every device gets the same name)")
        })?;
        let close = text[open..]
            .find('}')
            .map(|at| open + at)
            .ok_or_else(|| format!("an unclosed brace: {FORM}"))?;
        let (prefix, placeholder, suffix) =
            (&text[..open], &text[open..=close], &text[close + 1..]);
        if [prefix, suffix]
            .iter()
            .any(|part| part.contains(['{', '}']))
        {
            return Err(format!(
                "only one placeholder, and no other brace, may appear: {FORM}"
            ));
        }
        let width = match placeholder {
            "{i}" => 0,
            _ => placeholder
                .strip_prefix("{i:0")
                .and_then(|rest| rest.strip_suffix('}'))
                .filter(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|digits| digits.parse::<usize>().ok())
                .filter(|width| (1..=MAX_WIDTH).contains(width))
                .ok_or_else(|| format!("{placeholder}: {FORM}"))?,
        };
        if text.contains('\0') {
            return Err("must not contain NUL characters".to_string());
        }
        let longest = prefix.len() + suffix.len() + MAX_WIDTH;
        if longest > usize::from(u16::MAX) {
            return Err(format!(
                "renders up to {longest} bytes, more than an MQTT user name can carry (65535)"
            ));
        }
        Ok(TokenTemplate {
            written: text.to_string(),
            prefix: prefix.to_string(),
            suffix: suffix.to_string(),
            width,
        })
    }

    /// The token of device `number`.
    pub fn render(&self, number: u64) -> String {
        format!(
            "{}{number:0width$}{}",
            self.prefix,
            self.suffix,
            width = self.width
        )
    }

    /// The template as written.
    pub fn as_str(&self) -> &str {
        &self.written
    }

    /// Length in bytes of the longest rendering of any number up to `max_number`.
    pub fn widest_len(&self, max_number: u64) -> usize {
        let digits = max_number
            .checked_ilog10()
            .map_or(1, |log| log as usize + 1);
        self.prefix.len() + digits.max(self.width) + self.suffix.len()
    }

    /// The text before the number, the number's zero-padded width (0: none) and the text
    /// after it: what reading a device's number back from its name needs.
    pub fn parts(&self) -> (&str, usize, &str) {
        (&self.prefix, self.width, &self.suffix)
    }

    /// The literal text around the placeholder.
    pub fn literal_parts(&self) -> [&str; 2] {
        [&self.prefix, &self.suffix]
    }
}

/// The devices this process's clients use: client `local` (its index less the plan's
/// `client_index_offset`) uses number `first + local * stride`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexedTokens {
    pub template: TokenTemplate,
    /// `--tokens-start`: the number of the whole plan's first device.
    pub start: u64,
    first: u64,
    stride: u64,
}

impl IndexedTokens {
    /// A process whose clients start at global index `client_index_offset` (`--shard`).
    pub fn new(template: TokenTemplate, start: u64, client_index_offset: u64) -> IndexedTokens {
        IndexedTokens {
            template,
            start,
            first: start.saturating_add(client_index_offset),
            stride: 1,
        }
    }

    /// A Locust worker's share: listed as worker K of N, every Nth device from the Kth;
    /// not listed, every device from the first (see the module comment).
    pub fn share_for_worker(&mut self, worker: Option<Shard>) {
        (self.first, self.stride) = match worker {
            Some(shard) => (
                self.start.saturating_add(u64::from(shard.index) - 1),
                u64::from(shard.count),
            ),
            None => (self.start, 1),
        };
    }

    /// The device number of local client `local`.
    pub fn number_of(&self, local: u64) -> u64 {
        self.first.saturating_add(local.saturating_mul(self.stride))
    }

    /// The token of local client `local`.
    pub fn token_of(&self, local: u64) -> String {
        self.template.render(self.number_of(local))
    }

    /// Position of local client `local`'s device among the plan's (from 0), for reports,
    /// which name a device by its position, never by its token.
    pub fn position_of(&self, local: u64) -> u64 {
        self.number_of(local) - self.start
    }

    /// `DW00000001, DW00000003, DW00000005, ...`: the first tokens this process uses.
    pub fn describe_first(&self) -> String {
        let first: Vec<String> = (0..3).map(|local| self.token_of(local)).collect();
        format!("{}, ...", first.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(text: &str) -> TokenTemplate {
        TokenTemplate::parse(text).unwrap()
    }

    #[test]
    fn thingsboards_names_render_zero_padded() {
        let dw = template("DW{i:08}");
        assert_eq!(dw.render(1), "DW00000001");
        assert_eq!(dw.render(0), "DW00000000");
        assert_eq!(
            dw.render(123_456_789),
            "DW123456789",
            "wider numbers are not cut"
        );
        assert_eq!(template("dev-{i}-x").render(42), "dev-42-x");
        assert_eq!(template("{i:01}").render(7), "7");
        assert_eq!(template("{i:020}").render(u64::MAX), u64::MAX.to_string());
        assert_eq!(dw.as_str(), "DW{i:08}");
    }

    #[test]
    fn bad_templates_say_what_is_expected() {
        let cases = [
            ("DW", "has no {i}"),
            ("", "has no {i}"),
            ("DW{i", "an unclosed brace"),
            ("DW{i:8}", "{i:8}: expected"),
            ("DW{i:00}", "{i:00}: expected"),
            ("DW{i:021}", "{i:021}: expected"),
            ("DW{i:0x}", "{i:0x}: expected"),
            ("DW{n:08}", "{n:08}: expected"),
            ("DW{token}", "{token}: expected"),
            ("{i}{i}", "only one placeholder"),
            ("a}{i}", "only one placeholder"),
            ("a\0{i}", "NUL"),
        ];
        for (text, expected) in cases {
            let problem = TokenTemplate::parse(text).unwrap_err();
            assert!(problem.contains(expected), "{text:?}: {problem}");
        }
        let long = format!("{}{{i}}", "x".repeat(65_516));
        assert!(TokenTemplate::parse(&long).unwrap_err().contains("65535"));
    }

    #[test]
    fn one_process_and_each_shard_use_start_plus_the_global_index() {
        let whole = IndexedTokens::new(template("DW{i:08}"), 1, 0);
        assert_eq!(whole.token_of(0), "DW00000001");
        assert_eq!(whole.token_of(9), "DW00000010");
        // Shard 2 of a 10-user plan split in 2: global indexes 5..10.
        let second = IndexedTokens::new(template("DW{i:08}"), 1, 5);
        assert_eq!(second.token_of(0), "DW00000006");
        assert_eq!(second.position_of(0), 5);
        assert_eq!(
            whole.position_of(5),
            5,
            "the same device, the same position"
        );
    }

    #[test]
    fn locust_workers_interleave_and_together_cover_the_first_devices() {
        let mut used = Vec::new();
        for index in 1..=3 {
            let mut tokens = IndexedTokens::new(template("DW{i:08}"), 0, 1_000_000);
            tokens.share_for_worker(Some(Shard { index, count: 3 }));
            used.extend((0..4).map(|local| tokens.number_of(local)));
        }
        used.sort_unstable();
        assert_eq!(used, (0..12).collect::<Vec<u64>>());
        let mut unlisted = IndexedTokens::new(template("GW{i:08}"), 5, 1_000_000);
        unlisted.share_for_worker(None);
        assert_eq!(unlisted.token_of(0), "GW00000005");
        assert_eq!(
            unlisted.describe_first(),
            "GW00000005, GW00000006, GW00000007, ..."
        );
    }

    #[test]
    fn huge_numbers_saturate_instead_of_wrapping() {
        let mut tokens = IndexedTokens::new(template("{i}"), MAX_START, u64::MAX);
        assert_eq!(tokens.number_of(u64::MAX), u64::MAX);
        tokens.share_for_worker(Some(Shard {
            index: u32::MAX,
            count: u32::MAX,
        }));
        assert_eq!(tokens.number_of(u64::MAX), u64::MAX);
    }
}
